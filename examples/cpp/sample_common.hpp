// Command-line plumbing shared by the two samples: options, file pairs, reading and writing images.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common.hpp"

namespace wcdgan::sample {

constexpr int kDefaultMaxPixels = 200'000'000;  // runtime/io.py DEFAULT_MAX_PIXELS: ~1.2 GB decoded (8-bit RGB)
constexpr int kThreadsPerCore = 16;            // --threads beyond this many per core is a typo, not a plan
constexpr int kMaxThreads = 1024;

struct Args {
    std::map<std::string, std::string> options;            // "--tile" -> "256"
    std::vector<std::pair<std::string, std::string>> files;  // (input, output)
    std::vector<std::string> positional;

    int integer(const std::string& name, int fallback) const {
        auto it = options.find(name);
        if (it == options.end()) return fallback;
        try {
            return std::stoi(it->second);
        } catch (const std::exception&) {
            throw Error(name + ": expected an integer, got '" + it->second + "'");
        }
    }
    std::string text(const std::string& name, const std::string& fallback = "") const {
        auto it = options.find(name);
        return it == options.end() ? fallback : it->second;
    }
    // An integer option that must lie in lo..hi.
    int bounded(const std::string& name, int fallback, int lo, int hi) const {
        const int value = integer(name, fallback);
        if (value < lo || value > hi)
            throw Error(name + " must be in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " +
                        std::to_string(value));
        return value;
    }
    // --threads: 0 (the library's default) when absent, else 1..min(kMaxThreads, kThreadsPerCore per core).
    int threads() const {
        if (!options.count("--threads")) return 0;
        const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        return bounded("--threads", 0, 1, std::min(kMaxThreads, kThreadsPerCore * cores));
    }
    int max_pixels() const { return bounded("--max-pixels", kDefaultMaxPixels, 1, 1 << 30); }
};

// "--name value" options (all take a value), then `leading` positional arguments, then IN OUT pairs.
inline Args parse(int argc, char** argv, int leading) {
    Args args;
    std::vector<std::string> rest;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a.rfind("--", 0) == 0) {
            if (i + 1 >= argc) throw Error(a + ": missing value");
            args.options[a] = argv[++i];
        } else {
            rest.push_back(a);
        }
    }
    if (rest.size() < static_cast<size_t>(leading) + 2 || (rest.size() - leading) % 2)
        throw Error("expected " + std::string(leading ? "MODEL " : "") + "IN OUT [IN OUT ...]");
    args.positional.assign(rest.begin(), rest.begin() + leading);
    for (size_t i = leading; i < rest.size(); i += 2) args.files.emplace_back(rest[i], rest[i + 1]);
    return args;
}

// OpenCV checks an image's declared size against $OPENCV_IO_MAX_IMAGE_PIXELS before it decodes (and allocates),
// but reads the variable once, when the library loads. So a sample sets it to its limit and runs itself again when
// it differs; `read` checks the decoded size too, in case this re-execution is impossible (no /proc).
inline void limit_decoded_pixels(int max_pixels, char** argv) {
    const std::string want = std::to_string(max_pixels);
    const char* have = std::getenv("OPENCV_IO_MAX_IMAGE_PIXELS");
    if (have && want == have) return;
    setenv("OPENCV_IO_MAX_IMAGE_PIXELS", want.c_str(), 1);
    execv("/proc/self/exe", argv);  // returns only if it failed
}

// Throws Error if `out` names one of the `files`' inputs (the same path, a link to it or a hard link): an input is
// never overwritten.
inline void check_output(const std::string& out, const std::vector<std::pair<std::string, std::string>>& files) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path target = fs::weakly_canonical(out, ec);
    struct stat out_stat {};
    const bool exists = ::stat(out.c_str(), &out_stat) == 0;
    for (const auto& [in, unused] : files) {
        struct stat in_stat {};
        const bool same_inode = exists && ::stat(in.c_str(), &in_stat) == 0 && in_stat.st_dev == out_stat.st_dev &&
                                in_stat.st_ino == out_stat.st_ino;
        std::error_code in_ec;
        const fs::path source = fs::weakly_canonical(in, in_ec);
        if (same_inode || (!ec && !in_ec && target == source))
            throw Error(out + ": is the input " + in + " itself; refusing to overwrite an input");
    }
}

// Keeps 16-bit and gray images as they are, drops alpha, applies EXIF orientation. Refuses what is not a regular
// file (a FIFO would block) and images over `max_pixels`, before decoding them where OpenCV can tell.
inline cv::Mat read(const std::string& path, int max_pixels = kDefaultMaxPixels) {
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0 && !S_ISREG(info.st_mode))
        throw Error(path + ": not a regular file (a folder, FIFO or device); refusing to read it");
    cv::Mat image;
    try {
        image = cv::imread(path, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR);
    } catch (const cv::Exception& e) {  // OpenCV's size check: the declared size is over the limit
        const bool too_big = std::string(e.what()).find("CV_IO_MAX_IMAGE") != std::string::npos;
        throw Error(path + (too_big ? ": declares more pixels than --max-pixels " + std::to_string(max_pixels)
                                    : ": cannot read image (" + e.err + ")"));
    }
    if (image.empty()) throw Error(path + ": cannot read image (missing, corrupt or unsupported)");
    if (image.total() > static_cast<size_t>(max_pixels))
        throw Error(path + ": " + std::to_string(image.total()) + " pixels, over --max-pixels " +
                    std::to_string(max_pixels));
    return image;
}

inline void write(const std::string& path, const cv::Mat& image) {
    bool ok = false;
    try {
        ok = cv::imwrite(path, image);
    } catch (const cv::Exception& e) {
        throw Error(path + ": cannot write (" + e.what() + ")");
    }
    if (!ok) throw Error(path + ": cannot write (unknown extension or unwritable folder)");
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline void report(const std::string& in, const std::string& out, const cv::Mat& image, double s) {
    const double mp = image.total() / 1e6;
    std::fprintf(stderr, "%s -> %s: %dx%d, %.3f s, %.3f s/MP\n", in.c_str(), out.c_str(), image.cols, image.rows, s,
                 s / mp);
}

}  // namespace wcdgan::sample
