// One training step (forward, backward, AdamW) of a BERT-base-shaped BertForTokenClassification,
// lmforge side. Prints one JSON line; bench/compare_train_step.py alternates it with PyTorch.
// Usage: bench_train_step [--batch 8] [--seq 128] [--steps 3] [--layers 12] [--labels 9]
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>


#include "lmforge/core/runtime.h"
#include "lmforge/models/bert.h"
#include "lmforge/optim/adamw.h"

int main(int argc, char** argv) {
  int64_t batch = 8, seq = 128, steps = 3, layers = 12, labels = 9;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int64_t v = std::atoll(argv[i + 1]);
    if (k == "--batch") batch = v;
    else if (k == "--seq") seq = v;
    else if (k == "--steps") steps = v;
    else if (k == "--layers") layers = v;
    else if (k == "--labels") labels = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  lmf::manual_seed(0);
  lmf::models::BertConfig c;
  c.num_hidden_layers = layers;
  c.num_labels = labels;
  lmf::models::BertForTokenClassification model(c);
  model.train();
  lmf::optim::AdamWOptions o;
  o.lr = 1e-4;
  o.weight_decay = 0.01;
  lmf::optim::AdamW adam(model.parameters(), o);
  lmf::Tensor ids = lmf::randint({batch, seq}, 0, c.vocab_size);
  lmf::Tensor y = lmf::randint({batch, seq}, 0, labels);
  lmf::Tensor mask = lmf::Tensor::ones({batch, seq}, lmf::DType::i64);
  // Process CPU time (all threads): a steadier A/B measure than wall time on a loaded machine.
  auto cpu_now = [] {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  };
  std::vector<double> cpu_times;
  auto step = [&] {
    const double c0 = cpu_now();
    const auto t = std::chrono::steady_clock::now();
    lmf::Tensor loss = model.loss(model.forward(ids, mask), y);
    loss.backward();
    adam.step();
    adam.zero_grad();
    const double l = loss.item();
    cpu_times.push_back(cpu_now() - c0);
    return std::pair{std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count(), l};
  };
  step();  // warm-up (primitive creation, first-touch allocation)
  std::vector<double> times;
  double loss = 0;
  for (int64_t i = 0; i < steps; ++i) {
    auto [dt, l] = step();
    times.push_back(dt);
    loss = l;
  }
  // Peak RSS from /proc (VmHWM belongs to this process image; getrusage's ru_maxrss survives
  // exec and would report the parent's size when started from Python).
  double peak_mb = 0;
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::strncmp(line, "VmHWM:", 6) == 0) peak_mb = std::atof(line + 6) / 1024.0;
    std::fclose(f);
  }
  std::printf("{\"impl\": \"lmforge\", \"threads\": %d, \"times_s\": [", lmf::num_threads());
  for (size_t i = 0; i < times.size(); ++i) std::printf("%s%.4f", i ? ", " : "", times[i]);
  std::printf("], \"cpu_s\": [");
  for (size_t i = 1; i < cpu_times.size(); ++i)
    std::printf("%s%.4f", i > 1 ? ", " : "", cpu_times[i]);
  std::printf("], \"loss\": %.5f, \"params\": %lld, \"peak_rss_mb\": %.0f}\n", loss,
              static_cast<long long>(model.num_parameters()), peak_mb);
  return 0;
}
