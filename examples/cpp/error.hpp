// Errors of both libraries: one base type, so a caller can catch wcdgan::Error for "this frame failed".
#pragma once

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

}  // namespace wcdgan
