// selftest OPENCV_MODEL.onnx IMAGE: the libraries' contracts that the command-line samples cannot reach.
// Bad Mats and bad models must come back as exceptions (never a crash), and the embedded route must give the
// same pixels from several threads, from ROIs and into an aliased output. Prints one line per check.
// selftest --tiles CORE OVERLAP ALIGN LENGTH...: prints axis_tiles and reflect() for each length, for
// tests/test_cpp.py to compare with common/tiling.py.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

#include "native.hpp"
#include "sample_common.hpp"
#include "tiling.hpp"
#ifdef WCDGAN_WITH_EMBEDDED
#include "embedded.hpp"
#endif

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    std::printf("%s: %s\n", ok ? "ok" : "FAIL", what.c_str());
    failures += !ok;
}

// Runs `f`; passes when it throws E whose message contains `needle`.
template <typename E = wcdgan::Error>
void expect_error(const std::string& what, const std::function<void()>& f, const std::string& needle) {
    try {
        f();
        check(false, what + " (no exception)");
    } catch (const E& e) {
        const bool ok = std::string(e.what()).find(needle) != std::string::npos;
        check(ok, what + " -> " + e.what());
    } catch (const std::exception& e) {
        check(false, what + " (wrong exception type: " + e.what() + ")");
    }
}

bool same(const cv::Mat& a, const cv::Mat& b) {
    return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

// Mats no restorer accepts, with the words its error must contain.
const std::vector<std::pair<std::string, cv::Mat>> kBadMats = {
    {"empty Mat", cv::Mat()},
    {"4 channels", cv::Mat(8, 8, CV_8UC4, cv::Scalar::all(0))},
    {"2 channels", cv::Mat(8, 8, CV_8UC2, cv::Scalar::all(0))},
    {"float pixels", cv::Mat(8, 8, CV_32FC3, cv::Scalar::all(0))},
};

}  // namespace

// One line per length: "length: start crop_start crop_end; ... | reflect(-length-3 .. 2*length+2) | fitted core".
int print_tiles(int argc, char** argv) {
    const int core = std::atoi(argv[2]), overlap = std::atoi(argv[3]), align = std::atoi(argv[4]);
    for (int i = 5; i < argc; ++i) {
        const int length = std::atoi(argv[i]);
        std::printf("%d:", length);
        for (const auto& t : wcdgan::axis_tiles(length, core, overlap, align))
            std::printf(" %d %d %d;", t.start, t.crop_start, t.crop_end);
        std::printf(" |");
        for (int x = -length - 3; x <= 2 * length + 2; ++x) std::printf(" %d", wcdgan::reflect(x, length));
        std::printf(" | %d\n", wcdgan::fitted_core(length, core, align));
    }
    return 0;
}

int main(int argc, char** argv) {
    using namespace wcdgan;
    if (argc >= 5 && std::string(argv[1]) == "--tiles") return print_tiles(argc, argv);
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s OPENCV_MODEL.onnx IMAGE\n", argv[0]);
        return 2;
    }
    const std::string model = argv[1];
    cv::Mat image;
    try {
        image = sample::read(argv[2]);
    } catch (const Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }

    // Native route.
    expect_error("native: missing model", [] { NativeRestorer("/nonexistent/m.onnx"); }, "sidecar not found");
    NativeRestorer native(model);
    for (const auto& [what, mat] : kBadMats)
        expect_error("native: " + what, [&, &m = mat] { native.restore(m); }, mat.empty() ? "empty" : "expected");
    const cv::Rect roi(5, 7, 100, 90);
    check(same(native.restore(image(roi)), native.restore(image(roi).clone())), "native: ROI equals its copy");
    cv::Mat gray;
    cv::extractChannel(image, gray, 1);
    check(native.restore(gray).type() == CV_8UC1, "native: gray image restored as gray");

#ifdef WCDGAN_WITH_EMBEDDED
    Python python(Python::default_executable(), {WCDGAN_REPO_ROOT});
    expect_error<PythonError>("embedded: missing model", [] { Restorer({"/nonexistent/m.onnx"}); },
                              "ModelError: /nonexistent/m.onnx: no such model file");
    RestorerOptions options;
    options.backend = "ort-cpu";
    options.threads = 1;
    Restorer restorer(options);
    for (const auto& [what, mat] : kBadMats)
        expect_error("embedded: " + what, [&, &m = mat] { restorer.restore(m); }, mat.empty() ? "empty" : "expected");
    expect_error<PythonError>("embedded: Python error in a call", [&] { restorer.restore(image, 101); },
                              "ValueError: JPEG quality must be an integer in 1..100");
    const cv::Mat reference = restorer.restore(image);
    check(reference.type() == image.type() && cv::norm(reference, image, cv::NORM_L1) > 0,
          "embedded: works after an error, changes the image");
    check(same(restorer.restore(image(roi)), restorer.restore(image(roi).clone())), "embedded: ROI equals its copy");
    cv::Mat aliased = image.clone();
    restorer.restore(aliased, aliased);
    check(same(aliased, reference), "embedded: output aliasing the input is given its own buffer");

    // Two threads, each with its own Restorer, at the same time: the GIL must be free between calls.
    cv::Mat results[2];
    std::vector<std::thread> pool;
    for (auto& result : results)
        pool.emplace_back([&options, &image, &result] {
            try {
                result = Restorer(options).restore(image);
            } catch (const Error& e) {
                std::printf("thread: %s\n", e.what());
            }
        });
    for (auto& t : pool) t.join();
    check(same(results[0], reference) && same(results[1], reference), "embedded: two threads give the same pixels");
#endif
    std::printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
