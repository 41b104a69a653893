// Embedded route: the project's Python runtime (runtime.Restorer) inside a C++ process, fed cv::Mat frames
// without copies. No Python header leaks out of this file: callers link wcdgan_embedded and include this only.
#pragma once

#include <memory>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "common.hpp"

namespace wcdgan {

// The process's one embedded CPython (CPython cannot be restarted reliably): create it once, before any
// Restorer, on the main thread; destroy it after the last Restorer. Between calls no thread holds the GIL.
class Python {
public:
    // `executable`: the python whose installation to use (its prefix, site-packages, a venv's pyvenv.cfg),
    // by default the one this library was built against. `paths` go first on sys.path (e.g. a source checkout).
    explicit Python(const std::string& executable = default_executable(), const std::vector<std::string>& paths = {});
    ~Python();
    Python(const Python&) = delete;
    Python& operator=(const Python&) = delete;

    static std::string default_executable();

private:
    void* saved_thread_state_;  // PyThreadState*, released so that other threads can take the GIL
};

struct RestorerOptions {
    std::string model;               // "" = the bundled default; an .onnx (with its .json) or a folder
    std::string backend = "auto";    // auto | tensorrt | ort-cuda | ort-cpu
    std::string precision = "auto";  // auto (GPU: FP16, CPU: INT8 when exported) | fp32 | fp16 | int8
    int tile = 0;                    // (largest) core tile size; 0 = the backend's default (runtime.Restorer)
    int threads = 0;                 // ONNX Runtime CPU threads; 0 = its default
    int batch = 0;                   // tiles per backend call; 0 = the backend's default
};

// One runtime.Restorer. Thread-safe to use from any thread; calls on one Restorer are serialised by Python,
// so give each worker thread its own. Errors raised by Python come back as PythonError.
class Restorer {
public:
    explicit Restorer(const RestorerOptions& options = {});
    ~Restorer();
    Restorer(const Restorer&) = delete;
    Restorer& operator=(const Restorer&) = delete;

    // `image`: BGR (CV_8UC3, CV_16UC3) or gray (CV_8UC1, CV_16UC1). Returns a new Mat of the same type.
    // jpeg_quality > 0 picks among per-quality models (a folder); 0 = unknown.
    cv::Mat restore(const cv::Mat& image, int jpeg_quality = 0);
    // The same, written into `out` (reallocated unless it already has the image's size and type and does not
    // share its pixels): Python writes straight into out's buffer.
    void restore(const cv::Mat& image, cv::Mat& out, int jpeg_quality = 0);

    std::string backend_name() const;  // the backend that actually runs, e.g. "ort-cpu"

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace wcdgan
