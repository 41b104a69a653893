#include "json.hpp"

#include <cctype>
#include <cstdlib>
#include <stdexcept>

namespace wcdgan::json {

const Value* Value::find(const std::string& key) const {
    for (const auto& [name, value] : fields)
        if (name == key) return &value;
    return nullptr;
}

namespace {

class Parser {
public:
    explicit Parser(const std::string& text) : s_(text) {}

    Value document() {
        Value v = value(0);
        skip_space();
        if (i_ != s_.size()) fail("trailing characters");
        return v;
    }

private:
    const std::string& s_;
    size_t i_ = 0;

    [[noreturn]] void fail(const std::string& what) const {
        throw std::runtime_error("invalid JSON at byte " + std::to_string(i_) + ": " + what);
    }
    void skip_space() {
        while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    bool take(char c) {
        skip_space();
        if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
        return false;
    }
    void expect(char c) {
        if (!take(c)) fail(std::string("expected '") + c + "'");
    }
    bool word(const char* w) {
        const std::string token(w);
        if (s_.compare(i_, token.size(), token) != 0) return false;
        i_ += token.size();
        return true;
    }

    std::string string() {
        expect('"');
        std::string out;
        while (i_ < s_.size()) {
            char c = s_[i_++];
            if (c == '"') return out;
            if (c != '\\') {
                out += c;
                continue;
            }
            if (i_ >= s_.size()) break;
            switch (char e = s_[i_++]) {
                case 'n': out += '\n'; break;
                case 't': out += '\t'; break;
                case 'r': out += '\r'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'u':  // sidecar fields that matter are ASCII; other code points are kept as '?'
                    if (i_ + 4 > s_.size()) fail("short \\u escape");
                    {
                        long cp = std::strtol(s_.substr(i_, 4).c_str(), nullptr, 16);
                        out += cp < 0x80 ? static_cast<char>(cp) : '?';
                    }
                    i_ += 4;
                    break;
                default: out += e;  // \" \\ \/
            }
        }
        fail("unterminated string");
    }

    Value value(int depth) {
        if (depth > 64) fail("nested too deeply");
        skip_space();
        if (i_ >= s_.size()) fail("unexpected end");
        Value v;
        char c = s_[i_];
        if (c == '{') {
            v.kind = Value::Kind::Object;
            ++i_;
            if (take('}')) return v;
            do {
                std::string key = string();
                expect(':');
                v.fields.emplace_back(std::move(key), value(depth + 1));
            } while (take(','));
            expect('}');
        } else if (c == '[') {
            v.kind = Value::Kind::Array;
            ++i_;
            if (take(']')) return v;
            do v.items.push_back(value(depth + 1));
            while (take(','));
            expect(']');
        } else if (c == '"') {
            v.kind = Value::Kind::String;
            v.string = string();
        } else if (word("true")) {
            v.kind = Value::Kind::Bool;
            v.boolean = true;
        } else if (word("false")) {
            v.kind = Value::Kind::Bool;
        } else if (word("null")) {
            v.kind = Value::Kind::Null;
        } else {
            const char* begin = s_.c_str() + i_;
            char* end = nullptr;
            v.kind = Value::Kind::Number;
            v.number = std::strtod(begin, &end);  // C locale: programs start in it
            if (end == begin) fail("unexpected character");
            i_ += static_cast<size_t>(end - begin);
        }
        return v;
    }
};

}  // namespace

Value parse(const std::string& text) { return Parser(text).document(); }

}  // namespace wcdgan::json
