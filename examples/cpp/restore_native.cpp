// restore_native MODEL_opencv.onnx [--tile N] [--batch N] [--overlap N] [--threads N] [--max-pixels N]
//                IN OUT [IN OUT ...]
// Restores images with OpenCV's DNN module only: no Python, no ONNX Runtime. The model runs in FP32 (OpenCV has
// no INT8 path for the QDQ graph), as restore_embedded does by default. Exit 0 ok, 1 a file failed, 2 usage or
// model error.
#include <opencv2/core/utility.hpp>

#include "native.hpp"
#include "sample_common.hpp"

int main(int argc, char** argv) {
    using namespace wcdgan;
    sample::Args args;
    std::unique_ptr<NativeRestorer> restorer;
    int max_pixels = 0;
    try {
        args = sample::parse(argc, argv, 1);
        max_pixels = args.max_pixels();
        sample::limit_decoded_pixels(max_pixels, argv);
        if (int threads = args.threads(); threads > 0) cv::setNumThreads(threads);
        NativeOptions options;
        options.tile = args.integer("--tile", options.tile);
        options.batch = args.integer("--batch", options.batch);
        options.overlap = args.integer("--overlap", options.overlap);
        restorer = std::make_unique<NativeRestorer>(args.positional[0], options);
    } catch (const Error& e) {
        std::fprintf(stderr, "error: %s\nusage: %s MODEL_opencv.onnx [--tile N] [--batch N] [--overlap N] "
                             "[--threads N] [--max-pixels N] IN OUT [IN OUT ...]\n", e.what(), argv[0]);
        return 2;
    }
    const cv::Size window = restorer->window();
    std::fprintf(stderr, "model %s, largest window %dx%d, OpenCV %s DNN\n", restorer->spec().name.c_str(), window.width,
                 window.height, CV_VERSION);
    int failed = 0;
    for (const auto& [in, out] : args.files) {
        try {
            sample::check_output(out, args.files);
            const cv::Mat image = sample::read(in, max_pixels);
            const auto t0 = std::chrono::steady_clock::now();
            const cv::Mat restored = restorer->restore(image);
            const double s = sample::seconds_since(t0);
            sample::write(out, restored);
            sample::report(in, out, image, s);
        } catch (const Error& e) {
            std::fprintf(stderr, "error: %s\n", e.what());
            ++failed;
        }
    }
    return failed ? 1 : 0;
}
