// Project error hierarchy: every failure on bad input is one of these, carrying what failed and
// what to do. Nothing aborts the process on bad input.
#pragma once
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace lmf {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class ShapeError : public Error { using Error::Error; };
class DTypeError : public Error { using Error::Error; };
class IndexError : public Error { using Error::Error; };
class ValueError : public Error { using Error::Error; };
class IoError : public Error { using Error::Error; };
class AutogradError : public Error { using Error::Error; };

template <class E = Error, class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw E(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace lmf

// LMF_CHECK(cond, ErrorType, "format {}", args...) throws ErrorType with the formatted message.
#define LMF_CHECK(cond, E, ...)                 \
  do {                                          \
    if (!(cond)) ::lmf::fail<E>(__VA_ARGS__);   \
  } while (0)
