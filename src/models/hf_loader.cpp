// The Hugging Face state-dict loader every family uses (see models/hf_loader.h).
#include "lmforge/models/hf_loader.h"

#include <algorithm>
#include <set>

#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"

namespace lmf::models {

namespace {

bool starts_with(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// Renames and drops: what the checkpoint would be called today.
nn::StateDict normalise_keys(const nn::StateDict& state, const LoadSpec& spec, LoadReport& rep) {
  nn::StateDict sd;
  for (const auto& [k, t] : state) {
    if (std::any_of(spec.ignored_suffixes.begin(), spec.ignored_suffixes.end(),
                    [&](const std::string& s) { return ends_with(k, s); }))
      continue;
    const std::string key = spec.rename ? spec.rename(k) : k;
    if (key != k) rep.renamed_keys.push_back(k + " -> " + key);
    sd[key] = t;
  }
  return sd;
}

// Base-model prefix, as HF: a head accepts a base checkpoint and a base model a head's.
void align_prefix(nn::StateDict& sd, const LoadSpec& spec, LoadReport& rep) {
  if (spec.base_prefix.empty() || sd.empty()) return;
  const std::string p = spec.base_prefix + ".";
  const bool has_prefix =
      std::any_of(sd.begin(), sd.end(), [&](const auto& kv) { return starts_with(kv.first, p); });
  if (spec.keys_have_prefix && !has_prefix) {
    nn::StateDict moved;
    for (auto& [k, t] : sd) moved[p + k] = t;
    sd.swap(moved);
    rep.prefix_change = fmt::format("added '{}'", p);
  } else if (!spec.keys_have_prefix && has_prefix) {
    nn::StateDict moved;
    for (auto& [k, t] : sd) moved[starts_with(k, p) ? k.substr(p.size()) : k] = t;
    sd.swap(moved);
    rep.prefix_change = fmt::format("removed '{}'", p);
  }
}

}  // namespace

LoadReport load_hf_state_dict(nn::Module& model, const nn::StateDict& state, const LoadSpec& spec,
                              const LoadOptions& opt, const std::string& architecture,
                              const std::string& origin) {
  LoadReport rep;
  nn::StateDict sd = normalise_keys(state, spec, rep);
  align_prefix(sd, spec, rep);
  // Tied keys: the target shares the source's tensor, so only one of them is loaded.
  std::set<std::string> tied_targets;
  for (const auto& [target, source] : spec.tied) {
    tied_targets.insert(target);
    rep.tied_keys.push_back(target);
    auto it = sd.find(target);
    if (it == sd.end()) continue;
    if (!sd.count(source)) sd[source] = it->second;
    sd.erase(it);
  }
  const std::map<std::string, Tensor> own_tensors = model.state_dict();
  for (const auto& [k, t] : own_tensors)
    if (!sd.count(k) && !tied_targets.count(k)) rep.missing_keys.push_back(k);
  for (const auto& [k, t] : sd)
    if (!own_tensors.count(k)) rep.unexpected_keys.push_back(k);
  LMF_CHECK(!opt.strict || (rep.missing_keys.empty() && rep.unexpected_keys.empty()), ValueError,
            "{} does not match {} (strict load): missing keys [{}]; unexpected keys [{}]", origin,
            architecture, fmt::join(rep.missing_keys, ", "), fmt::join(rep.unexpected_keys, ", "));
  std::vector<std::string> shape_errors;
  for (const auto& [k, t] : sd) {
    auto it = own_tensors.find(k);
    if (it != own_tensors.end() && it->second.shape() != t.shape())
      shape_errors.push_back(fmt::format("'{}': checkpoint {} vs model {}", k, shape_str(t.shape()),
                                         shape_str(it->second.shape())));
  }
  LMF_CHECK(shape_errors.empty(), ShapeError,
            "{} does not match its config for {} (check hidden_size, vocab_size, num_labels, ... "
            "in config.json): {}",
            origin, architecture, fmt::join(shape_errors, "; "));
  if (opt.zero_copy) {
    NoGradGuard no_grad;
    for (const auto& [k, t] : sd) {
      if (!own_tensors.count(k)) continue;
      // A persistent buffer is not a parameter; copy into it.
      Tensor* slot = nullptr;
      try {
        slot = &model.parameter(k);
      } catch (const ValueError&) {
        model.buffer(k).copy_(t);
        continue;
      }
      if (t.dtype() == slot->dtype() && t.is_contiguous() && t.device() == slot->device()) {
        const bool grad = slot->requires_grad();
        *slot = t.detach();
        slot->set_requires_grad(grad);
      } else {
        slot->copy_(t);
      }
    }
    for (const auto& [target, source] : spec.tied)
      model.parameter(target) = model.parameter(source);
  } else {
    model.load_state_dict(sd, false);
  }
  return rep;
}

nn::StateDict state_dict_for_save(const nn::Module& model, const LoadSpec& spec) {
  std::set<std::string> skip;
  for (const auto& [target, source] : spec.tied) skip.insert(target);
  nn::StateDict out;
  for (const auto& [name, t] : model.state_dict())
    if (!skip.count(name)) out[name] = t;
  return out;
}

}  // namespace lmf::models
