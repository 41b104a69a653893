// Command-line plumbing shared by the two samples: options, file pairs, reading and writing images.
#pragma once

#include <chrono>
#include <cstdio>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"

namespace wcdgan::sample {

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

// Keeps 16-bit and gray images as they are, drops alpha, applies EXIF orientation.
inline cv::Mat read(const std::string& path) {
    cv::Mat image = cv::imread(path, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR);
    if (image.empty()) throw Error(path + ": cannot read image (missing, corrupt or unsupported)");
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
