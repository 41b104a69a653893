// Just enough JSON to read a model sidecar. cv::FileStorage is not used: OpenCV 4.6's JSON reader rejects
// `null`, which sidecars contain.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace wcdgan::json {

struct Value {
    enum class Kind { Null, Bool, Number, String, Array, Object } kind = Kind::Null;
    bool boolean = false;
    double number = 0;
    std::string string;
    std::vector<Value> items;                           // Array
    std::vector<std::pair<std::string, Value>> fields;  // Object, in file order

    // The member `key` of an object; nullptr when absent or when this is not an object.
    const Value* find(const std::string& key) const;
};

// Parses a whole document; throws std::runtime_error naming the byte offset of the problem.
Value parse(const std::string& text);

}  // namespace wcdgan::json
