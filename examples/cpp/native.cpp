#include "native.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "json.hpp"
#include "tiling.hpp"

namespace wcdgan {

namespace {

constexpr int kDefaultOverlap = 32;  // common/tiling.py DEFAULT_OVERLAP

std::string field(const json::Value& doc, const char* key, const std::string& path) {
    const json::Value* v = doc.find(key);
    if (!v || v->kind != json::Value::Kind::String) throw Error(path + ": sidecar has no string '" + key + "'");
    return v->string;
}

double number(const json::Value& doc, const char* key, const std::string& path) {
    const json::Value* v = doc.find(key);
    if (!v || v->kind != json::Value::Kind::Number) throw Error(path + ": sidecar has no number '" + key + "'");
    return v->number;
}

// Window pixels -> the model's planes, value / scale as float32: the same division the Python runtime does,
// so both feed the network identical inputs. BGR pixels go to R, G, B planes; gray is repeated to every plane.
template <typename T>
void fill_window(const cv::Mat& image, const AxisTile& ty, const AxisTile& tx, cv::Size window, int planes,
                 float* dst) {
    const float scale = std::numeric_limits<T>::max();  // 255 or 65535
    const int cn = image.channels(), plane = window.area();
    std::vector<int> cols(window.width);
    for (int x = 0; x < window.width; ++x) cols[x] = reflect(tx.start + x, image.cols);
    for (int y = 0; y < window.height; ++y) {
        const T* row = image.ptr<T>(reflect(ty.start + y, image.rows));
        float* out = dst + y * window.width;
        for (int x = 0; x < window.width; ++x) {
            const T* px = row + cols[x] * cn;
            for (int c = 0; c < planes; ++c) out[c * plane + x] = px[cn == 3 ? 2 - c : 0] / scale;
        }
    }
}

// Model output -> the tile's crop of `out`: clip to [0, 1], scale, round half to even (np.rint).
// An RGB model's result for a gray image is turned back to gray with BT.601 weights, as in Python.
template <typename T>
void write_crop(const float* src, const AxisTile& ty, const AxisTile& tx, cv::Size window, int planes, cv::Mat& out) {
    const float scale = std::numeric_limits<T>::max();
    const int cn = out.channels(), plane = window.area();
    auto quantise = [scale](float v) { return static_cast<T>(std::nearbyint(std::clamp(v, 0.f, 1.f) * scale)); };
    for (int y = ty.crop_start; y < ty.crop_end; ++y) {
        T* row = out.ptr<T>(y);
        const float* in = src + (y - ty.start) * window.width - tx.start;
        for (int x = tx.crop_start; x < tx.crop_end; ++x) {
            if (cn == 3) {
                for (int c = 0; c < 3; ++c) row[x * 3 + 2 - c] = quantise(in[c * plane + x]);
            } else if (planes == 3) {
                row[x] = quantise(0.299f * in[x] + 0.587f * in[plane + x] + 0.114f * in[2 * plane + x]);
            } else {
                row[x] = quantise(in[x]);
            }
        }
    }
}

}  // namespace

ModelSpec ModelSpec::load(const std::string& onnx_path) {
    const auto dot = onnx_path.rfind('.');
    const std::string path = (dot == std::string::npos ? onnx_path : onnx_path.substr(0, dot)) + ".json";
    std::ifstream file(path, std::ios::binary);
    if (!file) throw Error(path + ": sidecar not found (every model .onnx needs its .json beside it)");
    std::stringstream text;
    text << file.rdbuf();
    json::Value doc;
    try {
        doc = json::parse(text.str());
    } catch (const std::exception& e) {
        throw Error(path + ": unreadable sidecar (" + e.what() + ")");
    }
    if (doc.kind != json::Value::Kind::Object || !doc.find("format") || field(doc, "format", path) != "wcdgan-onnx")
        throw Error(path + ": not a WCDGAN model sidecar (expected format 'wcdgan-onnx')");
    ModelSpec spec;
    spec.name = field(doc, "name", path);
    spec.input_name = field(doc, "input_name", path);
    spec.output_name = field(doc, "output_name", path);
    spec.color = field(doc, "color", path);
    spec.channels = static_cast<int>(number(doc, "channels", path));
    spec.recommended_overlap = static_cast<int>(number(doc, "recommended_overlap", path));
    const json::Value* range = doc.find("value_range");
    const bool unit_range = range && range->items.size() == 2 && range->items[0].number == 0 &&
                            range->items[1].number == 1;
    if (field(doc, "layout", path) != "NCHW" || field(doc, "input_dtype", path) != "float32" ||
        field(doc, "output_dtype", path) != "float32" || !unit_range ||
        !((spec.channels == 3 && spec.color == "rgb") || (spec.channels == 1 && spec.color == "y")))
        throw Error(path + ": unsupported model I/O (this sample runs float32 NCHW [0, 1] RGB or Y models)");
    if (spec.recommended_overlap < 0 || spec.recommended_overlap > 1024)
        throw Error(path + ": recommended_overlap out of range");
    return spec;
}

NativeRestorer::NativeRestorer(const std::string& onnx_path, const NativeOptions& options)
    : spec_(ModelSpec::load(onnx_path)), batch_(options.batch), align_(options.align) {
    if (options.tile < 1 || options.tile > 4096 || options.batch < 1 || options.batch > 256 || options.align < 1 ||
        options.overlap > 1024)
        throw Error("NativeRestorer: tile must be 1..4096, batch 1..256, overlap up to 1024");
    // Same window geometry as common.tiling.window_grid: so that both routes cut identical windows.
    core_ = std::max(align_up(options.tile, align_), 2 * align_);
    const int overlap = options.overlap >= 0 ? options.overlap
                                             : (spec_.recommended_overlap ? spec_.recommended_overlap : kDefaultOverlap);
    overlap_ = align_up(overlap, align_);
    try {
        net_ = cv::dnn::readNetFromONNX(onnx_path);
    } catch (const cv::Exception& e) {
        throw Error(onnx_path + ": OpenCV cannot load this ONNX (for WCDGAN graphs use the variant written by "
                    "`python -m export.opencv_compat`): " + e.what());
    }
    if (net_.empty()) throw Error(onnx_path + ": OpenCV loaded an empty network");
    net_.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    net_.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
}

cv::Mat NativeRestorer::restore(const cv::Mat& image) {
    check_image(image);
    if (spec_.channels == 1 && image.channels() == 3)
        throw Error("restore: model " + spec_.name + " restores Y (gray) images; convert colour images in Python");

    const int core_h = fitted_core(image.rows, core_, align_), core_w = fitted_core(image.cols, core_, align_);
    const auto rows = axis_tiles(image.rows, core_h, overlap_, align_);
    const auto cols = axis_tiles(image.cols, core_w, overlap_, align_);
    const cv::Size win(core_w + 2 * overlap_, core_h + 2 * overlap_);
    const int planes = spec_.channels, ncols = static_cast<int>(cols.size()), n = static_cast<int>(rows.size()) * ncols;
    const int shape[] = {batch_, planes, win.height, win.width};
    cv::Mat blob(4, shape, CV_32F, cv::Scalar(0));  // slots past a short last batch keep old windows
    const size_t per_window = static_cast<size_t>(planes) * win.area();
    cv::Mat out(image.size(), image.type());
    const bool wide = image.depth() == CV_16U;

    for (int first = 0; first < n; first += batch_) {
        const int count = std::min(batch_, n - first);
        for (int i = 0; i < count; ++i) {
            const AxisTile &ty = rows[(first + i) / ncols], &tx = cols[(first + i) % ncols];
            float* dst = blob.ptr<float>() + i * per_window;
            wide ? fill_window<uint16_t>(image, ty, tx, win, planes, dst)
                 : fill_window<uint8_t>(image, ty, tx, win, planes, dst);
        }
        net_.setInput(blob, spec_.input_name);
        cv::Mat result;
        try {
            result = net_.forward();
        } catch (const cv::Exception& e) {
            throw Error(std::string("restore: OpenCV DNN failed: ") + e.what());
        }
        if (result.total() != blob.total()) throw Error("restore: model output shape differs from its input");
        if (!cv::checkRange(result.reshape(1, 1)(cv::Range::all(), cv::Range(0, static_cast<int>(count * per_window)))))
            throw Error("restore: model " + spec_.name + " produced NaN/Inf on this image");
        for (int i = 0; i < count; ++i) {
            const AxisTile &ty = rows[(first + i) / ncols], &tx = cols[(first + i) % ncols];
            const float* src = result.ptr<float>() + i * per_window;
            wide ? write_crop<uint16_t>(src, ty, tx, win, planes, out) : write_crop<uint8_t>(src, ty, tx, win, planes, out);
        }
    }
    return out;
}

}  // namespace wcdgan
