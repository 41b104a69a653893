// What both libraries share: their error types (one base, so a caller can catch wcdgan::Error for "this frame
// failed") and the images they accept.
#pragma once

#include <opencv2/core.hpp>
#include <stdexcept>
#include <string>

namespace wcdgan {

// Bad input (empty Mat, wrong type), missing or unusable model, NaN output.
struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// An exception raised by the Python runtime; what() is "TypeName: message" as Python prints it.
struct PythonError : Error {
    PythonError(std::string type, const std::string& message) : Error(type + ": " + message), type(std::move(type)) {}
    std::string type;  // e.g. "ModelError", "ValueError"
};

// Throws Error unless `image` is an 8- or 16-bit BGR or gray image (a ROI is fine).
inline void check_image(const cv::Mat& image) {
    if (image.empty()) throw Error("restore: empty image");
    if (image.dims != 2 || (image.depth() != CV_8U && image.depth() != CV_16U) ||
        (image.channels() != 1 && image.channels() != 3))
        throw Error("restore: expected an 8- or 16-bit BGR or gray image (CV_8UC3, CV_16UC3, CV_8UC1, CV_16UC1), got " +
                    cv::typeToString(image.type()));
}

}  // namespace wcdgan
