#include "lmforge/core/runtime.h"

#include <omp.h>

#include <cmath>
#include <cstdlib>

namespace lmf {

namespace {
int initial_threads() {
  if (const char* env = std::getenv("LMFORGE_NUM_THREADS")) {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n > 0 && n <= 4096) return static_cast<int>(n);
    fail<ValueError>("LMFORGE_NUM_THREADS='{}' is not a positive integer", env);
  }
  return omp_get_num_procs();
}
int& thread_count() {
  static int n = [] {
    int t = initial_threads();
    omp_set_num_threads(t);
    return t;
  }();
  return n;
}
// Applies a valid LMFORGE_NUM_THREADS at load time, so OpenMP and oneDNN use it even before the
// first call to num_threads(); an invalid value is reported by num_threads() with a clear error.
const bool kEnvApplied = [] {
  const char* env = std::getenv("LMFORGE_NUM_THREADS");
  char* end = nullptr;
  const long n = env ? std::strtol(env, &end, 10) : 0;
  if (env && end != env && *end == '\0' && n > 0 && n <= 4096) omp_set_num_threads(static_cast<int>(n));
  return true;
}();
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

int num_threads() { return thread_count(); }
void set_num_threads(int n) {
  LMF_CHECK(n > 0, ValueError, "set_num_threads({}): need at least one thread", n);
  thread_count() = n;
  omp_set_num_threads(n);
}

void Generator::manual_seed(uint64_t seed) {
  uint64_t z = seed;
  for (auto& s : s_) {  // splitmix64 expands the seed
    z += 0x9e3779b97f4a7c15ull;
    uint64_t x = z;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    s = x ^ (x >> 31);
  }
  has_spare_ = false;
}

uint64_t Generator::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Generator::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Generator::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1 = uniform(), u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  const double r = std::sqrt(-2.0 * std::log(u1));
  spare_ = r * std::sin(2.0 * M_PI * u2);
  has_spare_ = true;
  return r * std::cos(2.0 * M_PI * u2);
}

Generator& default_generator() {
  static Generator g;
  return g;
}
void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

Tensor randn(const Shape& shape, double mean, double std, DType dtype) {
  Tensor t = Tensor::empty(shape, DType::f32);
  float* p = t.data<float>();
  auto& g = default_generator();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(mean + std * g.normal());
  return t.to(dtype);
}

Tensor rand(const Shape& shape, double low, double high, DType dtype) {
  Tensor t = Tensor::empty(shape, DType::f32);
  float* p = t.data<float>();
  auto& g = default_generator();
  for (int64_t i = 0; i < t.numel(); ++i)
    p[i] = static_cast<float>(low + (high - low) * g.uniform());
  return t.to(dtype);
}

Tensor bernoulli(const Shape& shape, double prob) {
  LMF_CHECK(prob >= 0 && prob <= 1, ValueError, "bernoulli: p={} is not in [0, 1]", prob);
  Tensor t = Tensor::empty(shape, DType::boolean);
  bool* p = t.data<bool>();
  auto& g = default_generator();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = g.uniform() < prob;
  return t;
}

Tensor randint(const Shape& shape, int64_t low, int64_t high) {
  LMF_CHECK(high > low, ValueError, "randint: empty range [{}, {})", low, high);
  Tensor t = Tensor::empty(shape, DType::i64);
  int64_t* p = t.data<int64_t>();
  auto& g = default_generator();
  const uint64_t span = static_cast<uint64_t>(high - low);
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = low + static_cast<int64_t>(g.next_u64() % span);
  return t;
}

}  // namespace lmf
