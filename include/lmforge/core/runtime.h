// The explicit runtime context: thread count and the seeded random generator.
#pragma once
#include <array>
#include <cstdint>

#include "lmforge/core/tensor.h"

namespace lmf {

// Threads: one OpenMP pool for the process (oneDNN shares it). LMFORGE_NUM_THREADS sets the
// default (all cores when unset).
int num_threads();
void set_num_threads(int n);

// xoshiro256** generator with Box-Muller normals; its whole state can be saved and restored.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) { manual_seed(seed); }
  void manual_seed(uint64_t seed);
  uint64_t next_u64();
  double uniform();  // [0, 1)
  double normal();
  struct State {
    std::array<uint64_t, 4> s;
    double spare;
    bool has_spare;
  };
  State state() const { return {s_, spare_, has_spare_}; }
  void set_state(const State& st) {
    s_ = st.s;
    spare_ = st.spare;
    has_spare_ = st.has_spare;
  }

 private:
  std::array<uint64_t, 4> s_{};
  double spare_ = 0;
  bool has_spare_ = false;
};

Generator& default_generator();
void manual_seed(uint64_t seed);

// Random tensors (f32 unless stated) drawn from the default generator.
Tensor randn(const Shape& shape, double mean = 0.0, double std = 1.0, DType dtype = DType::f32);
Tensor rand(const Shape& shape, double low = 0.0, double high = 1.0, DType dtype = DType::f32);
Tensor bernoulli(const Shape& shape, double p);  // bool tensor, true with probability p
Tensor randint(const Shape& shape, int64_t low, int64_t high);  // i64 in [low, high)

}  // namespace lmf
