// Encoder inference (forward + mean pooling, no grad) of a real model folder or a random
// BERT-base-shaped BertModel, lmforge side. Prints one JSON line; bench/compare_encoder.py
// alternates it with PyTorch + transformers (and ONNX Runtime).
// Usage: bench_encoder (--model DIR | --random-base) [--batch 32] [--seq 128] [--iters 5]
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "lmforge/core/autograd.h"
#include "lmforge/core/runtime.h"
#include "lmforge/models/bert.h"
#include "lmforge/tasks/pooling.h"

namespace {

// VmHWM of this process image: getrusage's ru_maxrss keeps the parent's peak across fork + exec,
// so it would report the Python driver's memory instead.
double peak_rss_mb() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  return 0.0;
}

// CPU time of the whole process (all threads): on a loaded machine a steadier A/B measure than
// wall time for single-threaded runs.
double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir;
  bool random_base = false;
  int64_t batch = 32, seq = 128, iters = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--random-base") {
      random_base = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "option %s needs a value\n", argv[i]);
      return 2;
    }
    const std::string v = argv[++i];
    if (k == "--model")
      model_dir = v;
    else if (k == "--batch")
      batch = std::atoll(v.c_str());
    else if (k == "--seq")
      seq = std::atoll(v.c_str());
    else if (k == "--iters")
      iters = std::atoll(v.c_str());
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (model_dir.empty() == !random_base || batch < 1 || seq < 1 || iters < 1) {
    std::fprintf(stderr,
                 "usage: bench_encoder (--model DIR | --random-base) [--batch B] [--seq T] "
                 "[--iters N]\n");
    return 2;
  }
  try {
    const auto t_load = std::chrono::steady_clock::now();
    std::unique_ptr<lmf::models::EncoderModel> model;
    lmf::manual_seed(0);
    if (random_base) {
      lmf::models::BertConfig c;  // BERT-base: 12 layers, hidden 768, 12 heads, 3072
      model = lmf::models::create_model(c, "BertModel");
      lmf::models::init_bert_weights(*model, c);
    } else {
      lmf::models::LoadOptions o;
      o.architecture = "BertModel";
      model = lmf::models::create_model(model_dir, o);
    }
    model->prepare_inference();  // as the pipelines do (packed Linear weights)
    const double load_s = since(t_load);
    const int64_t vocab = model->config().vocab_size;
    lmf::models::EncoderInputs in;
    in.input_ids = lmf::randint({batch, seq}, 1000 % vocab, vocab);
    in.attention_mask = lmf::Tensor::ones({batch, seq}, lmf::DType::i64);
    in.token_type_ids = lmf::Tensor::zeros({batch, seq}, lmf::DType::i64);
    lmf::NoGradGuard no_grad;
    auto run = [&] {
      const auto t = std::chrono::steady_clock::now();
      const auto out = model->encoder().forward(in);
      const lmf::Tensor v =
          lmf::tasks::pool(out.last_hidden_state, in.attention_mask, lmf::tasks::Pooling::mean);
      volatile float sink = v.contiguous().data<float>()[0];
      (void)sink;
      return since(t);
    };
    run();  // warm-up: primitive creation, first-touch allocation
    std::vector<double> times, cpu_times;
    for (int64_t i = 0; i < iters; ++i) {
      const double c0 = cpu_now();
      times.push_back(run());
      cpu_times.push_back(cpu_now() - c0);
    }
    std::string ts, cs;
    for (double t : times) ts += (ts.empty() ? "" : ", ") + std::to_string(t);
    for (double t : cpu_times) cs += (cs.empty() ? "" : ", ") + std::to_string(t);
    std::printf(
        "{\"batch\": %lld, \"seq\": %lld, \"threads\": %d, \"parameters\": %lld, \"load_s\": %.4f, "
        "\"times_s\": [%s], \"cpu_s\": [%s], \"peak_rss_mb\": %.1f}\n",
        static_cast<long long>(batch), static_cast<long long>(seq), lmf::num_threads(),
        static_cast<long long>(model->num_parameters()), load_s, ts.c_str(), cs.c_str(), peak_rss_mb());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_encoder: %s\n", e.what());
    return 2;
  }
  return 0;
}
