// One training step of every tiny BERT/RoBERTa/ALBERT/ELECTRA head against PyTorch +
// transformers (goldens: scripts/reference/gen_step_goldens.py): the loss, every parameter
// gradient (tied weights accumulate both uses) and every parameter after one AdamW step with HF
// Trainer's weight-decay groups.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "lmforge/io/checkpoint.h"
#include "lmforge/models/bert.h"
#include "lmforge/optim/adamw.h"

namespace lmf::models {
namespace {

namespace fs = std::filesystem;

constexpr double kLr = 1e-3, kWeightDecay = 0.01, kEps = 1e-8;
// Gradients: |ours - torch| <= kRel |torch| + kGradFloor * (largest |gradient| of the model).
// The floor covers entries that are zero in exact arithmetic (attention key biases, a bias in
// front of a softmax), where float32 leaves rounding noise; torch's own float32 run needs a floor
// of at most 3e-7 against its float64 golden (printed by the generator).
constexpr double kRel = 1e-3, kGradFloor = 1e-6;

std::string step_dir() {
  return std::string(LMF_FIXTURES_DIR) + "/step";
}

std::vector<std::string> cases() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(step_dir()))
    if (e.path().extension() == ".safetensors") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::map<std::string, std::string> metadata_of(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return io::parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path)
      .metadata;
}

std::vector<double> values(const Tensor& t) {
  const auto v = t.to_vector<float>();
  return {v.begin(), v.end()};
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

class TrainStep : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainStep, LossGradientsAndAdamWUpdateMatchPyTorch) {
  const std::string path = step_dir() + "/" + GetParam() + ".safetensors";
  io::StateDict g = io::load_safetensors(path);
  const auto meta = metadata_of(path);
  auto model = create_model(std::string(LMF_FIXTURES_DIR) + "/bert/" + meta.at("model"));
  ASSERT_EQ(model->architecture(), meta.at("class"));
  model->eval();  // dropout off, as the golden's dropout probabilities of 0

  EncoderInputs in;
  in.input_ids = g.at("input.input_ids");
  in.attention_mask = g.at("input.attention_mask");
  if (g.count("input.token_type_ids")) in.token_type_ids = g.at("input.token_type_ids");
  EncoderLabels labels;
  if (g.count("label.labels")) labels.labels = g.at("label.labels");
  for (const char* k : {"label.next_sentence_label", "label.sentence_order_label"})
    if (g.count(k)) labels.next_sentence_label = g.at(k);
  if (g.count("label.start_positions")) labels.start_positions = g.at("label.start_positions");
  if (g.count("label.end_positions")) labels.end_positions = g.at("label.end_positions");

  ModelOutput out = model->forward(in, labels);
  ASSERT_TRUE(out.loss.defined());
  const double loss_ref = g.at("loss").item();
  EXPECT_NEAR(out.loss.item(), loss_ref, 1e-4 * std::abs(loss_ref)) << "loss";
  out.loss.backward();

  // The golden names every parameter once (torch's named_parameters); ours must be the same set
  // of tensors (tied names resolve to the shared tensor).
  std::map<std::string, Tensor> old;  // golden name -> parameter before the step
  std::set<const TensorImpl*> golden_params;
  for (const auto& [key, t] : g) {
    if (key.rfind("step.", 0) != 0) continue;
    const std::string name = key.substr(5);
    Tensor& p = model->parameter(name);
    golden_params.insert(p.impl());
    old[name] = p.clone();
  }
  std::set<const TensorImpl*> ours;
  for (const auto& [name, p] : model->named_parameters()) ours.insert(p.impl());
  EXPECT_EQ(ours, golden_params) << "parameter sets differ";

  double gmax = 0;
  for (const auto& [key, t] : g)
    if (key.rfind("grad.", 0) == 0) gmax = std::max(gmax, max_abs(values(t)));
  const double floor = kGradFloor * gmax;
  int64_t checked = 0;
  std::map<std::string, std::vector<double>> grads;  // ours, by golden name
  for (const auto& [name, before] : old) {
    const Tensor grad = model->parameter(name).grad();
    auto it = g.find("grad." + name);
    if (it == g.end()) {  // torch left it without a gradient: so must we
      EXPECT_FALSE(grad.defined()) << name << " has a gradient torch does not give it";
      continue;
    }
    ASSERT_TRUE(grad.defined()) << name << " received no gradient";
    ASSERT_EQ(grad.shape(), it->second.shape()) << name;
    const auto a = values(grad), b = values(it->second);
    int bad = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::abs(a[i] - b[i]) <= kRel * std::abs(b[i]) + floor) continue;
      if (++bad <= 3)
        ADD_FAILURE() << "grad " << name << "[" << i << "]: " << a[i] << " vs torch " << b[i];
    }
    EXPECT_EQ(bad, 0) << name << ": " << bad << " of " << a.size() << " gradient entries differ";
    grads[name] = a;
    ++checked;
  }
  EXPECT_GT(checked, 10);

  // HF Trainer's groups: decay on everything but biases and LayerNorm weights.
  std::set<std::string> decay_names;
  {
    std::stringstream ss(meta.at("decay"));
    for (std::string n; std::getline(ss, n, ',');) decay_names.insert(n);
  }
  auto groups = optim::decay_param_groups(model->named_parameters(), kWeightDecay);
  std::set<const TensorImpl*> decayed, decayed_ref;
  for (const auto& grp : groups)
    if (*grp.weight_decay > 0)
      for (const Tensor& p : grp.params) decayed.insert(p.impl());
  for (const auto& n : decay_names) decayed_ref.insert(model->parameter(n).impl());
  EXPECT_EQ(decayed, decayed_ref) << "weight-decay groups differ from HF Trainer's";

  optim::AdamWOptions opt;
  opt.lr = kLr;
  opt.weight_decay = kWeightDecay;
  optim::AdamW adamw(std::move(groups), opt);
  adamw.step();

  // Every parameter after the step. The golden stores s = (p_new - p_old) / lr in f16 (5e-4
  // relative). After one step s = -grad / (|grad| + eps) - wd * p_old, whose error from a grad
  // error d is at most eps * d / (|grad| - d + eps)^2: that bound, with d the gradient
  // tolerance above, is added to 1e-3 |s| + 1e-4. Where the golden gradient is itself within
  // the tolerance (rounding noise around 0) its direction is undetermined, so there the update
  // is checked against the same formula on our own gradient.
  for (const auto& [name, before] : old) {
    const auto p_old = values(before), p_new = values(model->parameter(name));
    const auto s_ref = values(g.at("step." + name));
    const double wd = decay_names.count(name) ? kWeightDecay : 0.0;
    auto git = g.find("grad." + name);
    const bool has_grad = git != g.end();
    const std::vector<double> g_ref = has_grad ? values(git->second) : std::vector<double>();
    int bad = 0;
    for (size_t i = 0; i < p_old.size(); ++i) {
      const double s = (p_new[i] - p_old[i]) / kLr;
      double expect = s_ref[i], tol = 1e-3 * std::abs(s_ref[i]) + 1e-4;
      if (has_grad) {
        const double gr = g_ref[i], d = kRel * std::abs(gr) + floor;
        if (std::abs(gr) <= d) {
          const double mine = grads[name][i];
          expect = -mine / (std::abs(mine) + kEps) - wd * p_old[i];
        } else {
          const double m = std::abs(gr) - d + kEps;
          tol += kEps * d / (m * m);
        }
      }
      // Every updated parameter, relative 1e-3 (implied by the step check, stated for the proof).
      const double p_ref = p_old[i] + kLr * expect;
      const bool ok = std::abs(s - expect) <= tol &&
                      std::abs(p_new[i] - p_ref) <= 1e-3 * std::abs(p_ref) + kLr * tol;
      if (ok) continue;
      if (++bad <= 3)
        ADD_FAILURE() << "update " << name << "[" << i << "]: step " << s << " vs torch "
                      << s_ref[i] << " (expected " << expect << ", tol " << tol << ")";
    }
    EXPECT_EQ(bad, 0) << name << ": " << bad << " of " << p_old.size() << " updates differ";
  }
}

INSTANTIATE_TEST_SUITE_P(AllHeads, TrainStep, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace lmf::models
