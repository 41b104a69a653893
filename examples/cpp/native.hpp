// Native route, no Python: the exported ONNX run by OpenCV's DNN module with the runtime's tiling contract.
// Needs the OpenCV-compatible graph (`python -m export.opencv_compat MODEL.onnx`, or `export.build --opencv`):
// OpenCV 4.6 rejects the original's broadcast in the spatial attention.
#pragma once

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>
#include <string>

#include "common.hpp"

namespace wcdgan {

// The fields of the JSON sidecar (runtime/spec.py) that running the model needs.
struct ModelSpec {
    std::string name, input_name, output_name, color;  // color: "rgb" (R, G, B planes) or "y"
    int channels = 3;
    int recommended_overlap = 0;  // context pixels per side; 0 = not measured

    // Reads NAME.json beside NAME.onnx; throws Error unless it describes a float32 NCHW [0, 1] model.
    static ModelSpec load(const std::string& onnx_path);
};

struct NativeOptions {
    int tile = 512;     // largest core per side, rounded up to `align`; each image gets the core that covers it in
                        // the fewest tiles (as the Python Restorer's CPU backends: common.tiling.TileGrid.fitted)
    int overlap = -1;   // context per side; -1: the sidecar's recommended_overlap (else 32), as in Python
    int batch = 1;      // windows per forward pass; a short last batch is padded so the shape never changes
    int align = 16;     // window-start grid
};

class NativeRestorer {
public:
    explicit NativeRestorer(const std::string& onnx_path, const NativeOptions& options = {});

    // Restores an 8- or 16-bit BGR (CV_8UC3, CV_16UC3) or gray (CV_8UC1, CV_16UC1) image; returns the same
    // type and size. A Y-channel model takes gray images only (the Python runtime also converts colour).
    cv::Mat restore(const cv::Mat& image);

    const ModelSpec& spec() const { return spec_; }
    cv::Size window() const { return {core_ + 2 * overlap_, core_ + 2 * overlap_}; }  // the largest window

private:
    ModelSpec spec_;
    cv::dnn::Net net_;
    int core_, overlap_, batch_, align_;
};

}  // namespace wcdgan
