// restore_embedded [--model PATH] [--backend NAME] [--precision P] [--tile N] [--threads N] [--jobs N]
//                  [--max-pixels N] IN OUT [IN OUT ...]
// Restores images with the project's Python runtime embedded in this process. --jobs N runs N worker threads,
// each with its own Restorer; the GIL is free between Python calls, so ONNX Runtime runs them in parallel.
// --precision defaults to fp32, the precision restore_native runs, so that the two samples agree; auto picks the
// runtime's default (INT8 on a CPU, when the model has it: faster). Exit 0 ok, 1 a file failed, 2 usage, Python
// or model error.
#include <atomic>
#include <mutex>
#include <thread>

#include "embedded.hpp"
#include "sample_common.hpp"

int main(int argc, char** argv) {
    using namespace wcdgan;
    sample::Args args;
    RestorerOptions options;
    int jobs = 1, max_pixels = 0;
    try {
        args = sample::parse(argc, argv, 0);
        max_pixels = args.max_pixels();
        sample::limit_decoded_pixels(max_pixels, argv);
        options.model = args.text("--model");
        options.backend = args.text("--backend", options.backend);
        options.precision = args.text("--precision", "fp32");
        options.tile = args.integer("--tile", options.tile);
        options.threads = args.threads();
        jobs = std::max(1, std::min(args.integer("--jobs", 1), static_cast<int>(args.files.size())));
    } catch (const Error& e) {
        std::fprintf(stderr, "error: %s\nusage: %s [--model PATH] [--backend NAME] [--precision P] [--tile N] "
                             "[--threads N] [--jobs N] [--max-pixels N] IN OUT [IN OUT ...]\n", e.what(), argv[0]);
        return 2;
    }
    // This checkout first on sys.path: the sample runs the runtime of the source tree it was built from.
    std::unique_ptr<Python> python;
    try {
        python = std::make_unique<Python>(Python::default_executable(), std::vector<std::string>{WCDGAN_REPO_ROOT});
    } catch (const Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }

    std::atomic<size_t> next{0};
    std::atomic<int> failed{0}, setup_failed{0};
    std::mutex log;  // one line at a time on stderr
    auto worker = [&]() {
        std::unique_ptr<Restorer> restorer;
        try {
            restorer = std::make_unique<Restorer>(options);  // one per thread: calls on one are serialised
        } catch (const Error& e) {
            std::lock_guard lock(log);
            std::fprintf(stderr, "error: %s\n", e.what());
            ++setup_failed;
            return;
        }
        for (size_t i; (i = next++) < args.files.size();) {
            const auto& [in, out] = args.files[i];
            try {
                sample::check_output(out, args.files);
                const cv::Mat image = sample::read(in, max_pixels);
                const auto t0 = std::chrono::steady_clock::now();
                const cv::Mat restored = restorer->restore(image);
                const double s = sample::seconds_since(t0);
                sample::write(out, restored);
                std::lock_guard lock(log);
                sample::report(in, out, image, s);
            } catch (const Error& e) {
                std::lock_guard lock(log);
                std::fprintf(stderr, "error: %s\n", e.what());
                ++failed;
            }
        }
        const std::string backend = restorer->backend_name();
        std::lock_guard lock(log);
        std::fprintf(stderr, "worker done (backend %s)\n", backend.c_str());
    };
    std::vector<std::thread> pool;
    for (int j = 0; j < jobs; ++j) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
    if (setup_failed) return 2;
    return failed ? 1 : 0;
}
