// The tiling contract of common/tiling.py, in C++ (read that module's docstring for the why):
// fixed windows of core + 2 * overlap per axis, window starts on the `align` grid (16: JPEG 4:2:0 MCUs keep
// their phase), reflect padding, and each output pixel taken from the one window where it is most central.
#pragma once

#include <algorithm>
#include <stdexcept>
#include <vector>

namespace wcdgan {

// One window along an axis: it reads [start, start + size) and supplies output [crop_start, crop_end).
struct AxisTile {
    int start, crop_start, crop_end;
};

inline int align_up(int value, int align) { return (value + align - 1) / align * align; }  // value >= 0

// common.tiling.fitted_core: the smallest core on the grid covering length in ceil(length / core_max) tiles.
inline int fitted_core(int length, int core_max, int align) {
    const int n = std::max(1, (length + core_max - 1) / core_max);
    return std::max(align_up((length + n - 1) / n, align), 2 * align);
}

// Windows of size core + 2 * overlap covering [0, length); core and overlap are multiples of align, core >= 2 align.
inline std::vector<AxisTile> axis_tiles(int length, int core, int overlap, int align) {
    if (length < 1 || core % align || overlap % align || core < 2 * align || overlap < 0)
        throw std::invalid_argument("axis_tiles: bad length, core or overlap");
    const int size = core + 2 * overlap;
    const int n = std::max(1, (length + core - 1) / core);
    if (n == 1) return {{-overlap, 0, length}};
    // The first window starts at -overlap, the last ends at or beyond length + overlap, the ones between are
    // spread evenly on the grid: total travel in grid units, integer-divided exactly as the Python does.
    const long long units = align_up(length - core, align) / align;
    std::vector<int> starts(n);
    for (int k = 0; k < n; ++k) starts[k] = -overlap + align * static_cast<int>(k * units / (n - 1));
    std::vector<AxisTile> tiles(n);
    int lo = 0;
    for (int k = 0; k < n; ++k) {
        // Boundary at the midpoint between window centres; a + b + size > 0, so '/' is Python's '//'.
        const int hi = k + 1 < n ? (starts[k] + starts[k + 1] + size) / 2 : length;
        tiles[k] = {starts[k], lo, hi};
        lo = hi;
    }
    return tiles;
}

// Source index of position i on an axis of `length`: reflection without repeating the edge pixel (numpy's
// "reflect"), continued periodically so that any position maps into [0, length); length 1 maps to 0.
inline int reflect(int i, int length) {
    if (length == 1) return 0;
    const int period = 2 * (length - 1);
    i %= period;
    if (i < 0) i += period;
    return i < length ? i : period - i;
}

}  // namespace wcdgan
