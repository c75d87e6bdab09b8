// Element types and the f32 <-> bf16/f16 conversions (round to nearest even).
#pragma once
#include <cstdint>
#include <cstring>
#include <string_view>

namespace lmf {

enum class DType : uint8_t { f32, bf16, f16, i8, u8, i32, i64, boolean };
enum class Device : uint8_t { cpu, cuda };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);
std::string_view device_name(Device d);
inline bool is_floating(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

// C++ type for each dtype (bf16/f16 are stored as raw 16-bit patterns).
struct bf16_t { uint16_t bits; };
struct f16_t { uint16_t bits; };
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<bf16_t>() { return DType::bf16; }
template <> constexpr DType dtype_of<f16_t>() { return DType::f16; }
template <> constexpr DType dtype_of<int8_t>() { return DType::i8; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::u8; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<bool>() { return DType::boolean; }

// Calls fn(T{}) with T the C++ type of `t` (templated-lambda dispatch, no macros).
template <class Fn>
decltype(auto) visit_dtype(DType t, Fn&& fn) {
  switch (t) {
    case DType::f32: return fn(float{});
    case DType::bf16: return fn(bf16_t{});
    case DType::f16: return fn(f16_t{});
    case DType::i8: return fn(int8_t{});
    case DType::u8: return fn(uint8_t{});
    case DType::i32: return fn(int32_t{});
    case DType::i64: return fn(int64_t{});
    case DType::boolean: return fn(bool{});
  }
  return fn(float{});
}

// Element as double / from double, for any dtype (used by conversions and tests).
template <class T> inline double to_double(T v) { return static_cast<double>(v); }
template <> inline double to_double(bf16_t v) { return bf16_to_f32(v.bits); }
template <> inline double to_double(f16_t v) { return f16_to_f32(v.bits); }
template <class T> inline T from_double(double v) { return static_cast<T>(v); }
template <> inline bf16_t from_double(double v) { return {f32_to_bf16(static_cast<float>(v))}; }
template <> inline f16_t from_double(double v) { return {f32_to_f16(static_cast<float>(v))}; }
template <> inline bool from_double(double v) { return v != 0.0; }

}  // namespace lmf
