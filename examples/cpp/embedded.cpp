#include "embedded.hpp"

#include <pybind11/embed.h>

namespace py = pybind11;
using namespace py::literals;

namespace wcdgan {

namespace {

// Holds the GIL for a scope through CPython's own PyGILState API. Not py::gil_scoped_acquire: on a thread
// Python has never seen, pybind11 (before its "simple GIL management") makes a thread state that PyGILState
// does not know, and an extension module that calls PyGILState_Ensure itself (ONNX Runtime's does, when it is
// imported) then waits forever for the GIL its own thread holds.
class Gil {
public:
    Gil() : state_(PyGILState_Ensure()) {}
    ~Gil() { PyGILState_Release(state_); }
    Gil(const Gil&) = delete;
    Gil& operator=(const Gil&) = delete;

private:
    PyGILState_STATE state_;
};

// A Python exception as a C++ one, formatted as Python prints its last line. Called with the GIL held.
PythonError to_cpp(const py::error_already_set& e) {
    return PythonError(py::str(e.type().attr("__name__")), py::str(e.value()));
}

// A numpy view of the Mat's pixels, no copy: a memoryview over its bytes shaped by numpy.ndarray with the Mat's
// strides (ROIs work), then for colour the channel axis reversed, still a view: OpenCV's BGR buffer is read and
// written as the RGB image the runtime expects. Only numpy's Python API is used, so any numpy version serves.
py::object numpy_view(const py::module_& np, const cv::Mat& m, bool writable) {
    const auto span = static_cast<py::ssize_t>(m.step[0] * (m.rows - 1) + m.cols * m.elemSize());
    py::object bytes = py::memoryview::from_memory(m.data, span, !writable);
    const auto rows = static_cast<py::ssize_t>(m.step[0]), pixel = static_cast<py::ssize_t>(m.elemSize());
    const char* dtype = m.depth() == CV_8U ? "uint8" : "uint16";
    if (m.channels() == 1)
        return np.attr("ndarray")(py::make_tuple(m.rows, m.cols), dtype, bytes, 0, py::make_tuple(rows, pixel));
    py::object bgr = np.attr("ndarray")(py::make_tuple(m.rows, m.cols, 3), dtype, bytes, 0,
                                        py::make_tuple(rows, pixel, static_cast<py::ssize_t>(m.elemSize1())));
    return np.attr("flip")(bgr, 2);
}

}  // namespace

// ---- Python ---------------------------------------------------------------------------------------------

std::string Python::default_executable() { return WCDGAN_PYTHON_EXECUTABLE; }  // set by CMake

Python::Python(const std::string& executable, const std::vector<std::string>& paths) {
    if (Py_IsInitialized()) throw Error("a Python interpreter is already running in this process");
    PyConfig config;
    PyConfig_InitPythonConfig(&config);  // honours PYTHONPATH/PYTHONHOME like the python command does
    config.install_signal_handlers = 0;  // SIGINT and friends belong to the host application
    config.parse_argv = 0;
    // Paths are computed as for `executable`: its prefix and site-packages (a venv's too, via pyvenv.cfg), not
    // those of this program's own location.
    PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, executable.c_str());
    if (PyStatus_Exception(status)) {
        PyConfig_Clear(&config);
        throw Error("cannot configure Python: " + std::string(status.err_msg ? status.err_msg : "?"));
    }
    try {
        py::initialize_interpreter(&config, 0, nullptr, /*add_program_dir_to_path=*/false);
    } catch (const std::exception& e) {
        throw Error(std::string("cannot start Python (") + executable + "): " + e.what());
    }
    try {
        py::list sys_path = py::module_::import("sys").attr("path");
        for (auto it = paths.rbegin(); it != paths.rend(); ++it) sys_path.insert(0, *it);
    } catch (const py::error_already_set& e) {
        auto error = to_cpp(e);
        py::finalize_interpreter();
        throw error;
    }
    saved_thread_state_ = PyEval_SaveThread();  // release the GIL; each call takes it for its own duration
}

Python::~Python() {
    PyEval_RestoreThread(static_cast<PyThreadState*>(saved_thread_state_));
    py::finalize_interpreter();
}

// ---- Restorer -------------------------------------------------------------------------------------------

struct Restorer::Impl {
    py::module_ np;
    py::object restorer;
};

Restorer::Restorer(const RestorerOptions& o) {
    if (!Py_IsInitialized()) throw Error("wcdgan::Restorer needs a wcdgan::Python object alive first");
    Gil gil;
    try {
        auto impl = std::make_unique<Impl>();
        impl->np = py::module_::import("numpy");
        py::object model = o.model.empty() ? py::object(py::none()) : py::object(py::str(o.model));
        auto maybe = [](int v) { return v > 0 ? py::object(py::int_(v)) : py::object(py::none()); };
        impl->restorer = py::module_::import("runtime").attr("Restorer")(
            model, "backend"_a = o.backend, "precision"_a = o.precision, "tile"_a = maybe(o.tile), "threads"_a = maybe(o.threads),
            "batch"_a = maybe(o.batch));
        impl_ = std::move(impl);
    } catch (const py::error_already_set& e) {
        throw to_cpp(e);
    }
}

Restorer::~Restorer() {
    Gil gil;  // Python objects may only be released with the GIL held
    impl_.reset();
}

std::string Restorer::backend_name() const {
    Gil gil;
    return py::str(impl_->restorer.attr("backend_name"));
}

cv::Mat Restorer::restore(const cv::Mat& image, int jpeg_quality) {
    cv::Mat out;
    restore(image, out, jpeg_quality);
    return out;
}

void Restorer::restore(const cv::Mat& image, cv::Mat& out, int jpeg_quality) {
    check_image(image);
    const cv::Mat in = image;  // holds a reference: the pixels outlive the call even if `image` is reassigned
    const bool overlaps = out.data && out.datastart < in.dataend && in.datastart < out.dataend;
    if (overlaps || out.size() != in.size() || out.type() != in.type()) out = cv::Mat(in.size(), in.type());
    Gil gil;
    try {
        py::object quality = jpeg_quality > 0 ? py::object(py::int_(jpeg_quality)) : py::object(py::none());
        // The views die before this function returns: Python keeps no reference to the C++ buffers.
        impl_->restorer(numpy_view(impl_->np, in, false), "quality"_a = quality,
                        "out"_a = numpy_view(impl_->np, out, true));
    } catch (const py::error_already_set& e) {
        throw to_cpp(e);
    }
}

}  // namespace wcdgan
