#include "lmforge/nn/module.h"

#include <set>
#include <unordered_set>

#include "lmforge/core/autograd.h"

namespace lmf::nn {

Module::~Module() = default;

void Module::check_new_name(const std::string& name) const {
  LMF_CHECK(!name.empty() && name.find('.') == std::string::npos, ValueError,
            "Module: invalid name '{}' (must be non-empty and contain no '.')", name);
  auto taken = [&](const auto& slots) {
    for (const auto& s : slots)
      if (s.name == name) return true;
    return false;
  };
  bool child_taken = false;
  for (const auto& [n, m] : children_) child_taken |= n == name;
  LMF_CHECK(!taken(params_) && !taken(buffers_) && !child_taken, ValueError,
            "Module: the name '{}' is already registered in this module", name);
}

Tensor& Module::register_parameter(const std::string& name, Tensor tensor, bool requires_grad) {
  check_new_name(name);
  LMF_CHECK(tensor.defined(), ValueError, "register_parameter('{}'): undefined tensor", name);
  if (requires_grad) tensor.set_requires_grad(true);
  params_.push_back({name, std::move(tensor), true});
  return params_.back().tensor;
}

Tensor& Module::register_buffer(const std::string& name, Tensor tensor, bool persistent) {
  check_new_name(name);
  LMF_CHECK(tensor.defined(), ValueError, "register_buffer('{}'): undefined tensor", name);
  buffers_.push_back({name, std::move(tensor), persistent});
  return buffers_.back().tensor;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name);
  LMF_CHECK(module != nullptr, ValueError, "register_module('{}'): null module", name);
  LMF_CHECK(module.get() != this, ValueError,
            "register_module('{}'): a module cannot contain itself", name);
  children_.emplace_back(name, std::move(module));
}

std::shared_ptr<Module> Module::child(const std::string& name) const {
  for (const auto& [n, m] : children_)
    if (n == name) return m;
  return nullptr;
}

Tensor* Module::find_slot(const std::string& path, bool buffers) {
  Module* m = this;
  size_t start = 0;
  for (size_t dot = path.find('.'); dot != std::string::npos; dot = path.find('.', start)) {
    auto c = m->child(path.substr(start, dot - start));
    if (!c) return nullptr;
    m = c.get();
    start = dot + 1;
  }
  const std::string leaf = path.substr(start);
  for (auto& s : buffers ? m->buffers_ : m->params_)
    if (s.name == leaf) return &s.tensor;
  return nullptr;
}

Tensor& Module::parameter(const std::string& path) {
  Tensor* t = find_slot(path, false);
  LMF_CHECK(t != nullptr, ValueError, "Module: no parameter '{}'", path);
  return *t;
}

Tensor& Module::buffer(const std::string& path) {
  Tensor* t = find_slot(path, true);
  LMF_CHECK(t != nullptr, ValueError, "Module: no buffer '{}'", path);
  return *t;
}

void Module::collect(const std::string& prefix, bool params, bool buffers, bool persistent_only,
                     std::vector<std::pair<std::string, Tensor*>>& out) const {
  if (params)
    for (const auto& s : params_) out.emplace_back(prefix + s.name, const_cast<Tensor*>(&s.tensor));
  if (buffers)
    for (const auto& s : buffers_)
      if (s.persistent || !persistent_only)
        out.emplace_back(prefix + s.name, const_cast<Tensor*>(&s.tensor));
  for (const auto& [name, m] : children_)
    m->collect(prefix + name + ".", params, buffers, persistent_only, out);
}

namespace {
NamedTensors dedup(const std::vector<std::pair<std::string, Tensor*>>& all) {
  NamedTensors out;
  std::unordered_set<const TensorImpl*> seen;
  for (const auto& [name, t] : all)
    if (seen.insert(t->impl()).second) out.emplace_back(name, *t);
  return out;
}
}  // namespace

NamedTensors Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor*>> all;
  collect("", true, false, false, all);
  return dedup(all);
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor*>> all;
  collect("", false, true, false, all);
  return dedup(all);
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  std::unordered_set<const Module*> seen;
  std::function<void(const std::string&, Module*)> walk = [&](const std::string& path, Module* m) {
    if (!seen.insert(m).second) return;
    out.emplace_back(path, m);
    for (const auto& [name, c] : m->children_)
      walk(path.empty() ? name : path + "." + name, c.get());
  };
  walk("", this);
  return out;
}

StateDict Module::state_dict() const {
  std::vector<std::pair<std::string, Tensor*>> all;
  collect("", true, true, true, all);
  StateDict out;
  for (const auto& [name, t] : all) out.emplace(name, *t);
  return out;
}

LoadResult Module::load_state_dict(const StateDict& state, bool strict) {
  std::vector<std::pair<std::string, Tensor*>> own;
  collect("", true, true, true, own);
  LoadResult result;
  std::set<std::string> own_keys;
  std::vector<std::string> shape_errors;
  for (const auto& [key, dst] : own) {
    own_keys.insert(key);
    auto it = state.find(key);
    if (it == state.end()) {
      result.missing_keys.push_back(key);
      continue;
    }
    if (it->second.shape() != dst->shape())
      shape_errors.push_back(fmt::format("'{}': checkpoint {} vs model {}", key,
                                         shape_str(it->second.shape()), shape_str(dst->shape())));
  }
  for (const auto& [key, t] : state)
    if (!own_keys.count(key)) result.unexpected_keys.push_back(key);
  LMF_CHECK(shape_errors.empty(), ShapeError, "load_state_dict: shape mismatch for {}",
            fmt::join(shape_errors, "; "));
  LMF_CHECK(!strict || (result.missing_keys.empty() && result.unexpected_keys.empty()), ValueError,
            "load_state_dict (strict): missing keys [{}]; unexpected keys [{}]",
            fmt::join(result.missing_keys, ", "), fmt::join(result.unexpected_keys, ", "));
  NoGradGuard no_grad;
  release_inference();  // packed copies of the old weights
  for (const auto& [key, dst] : own) {
    auto it = state.find(key);
    if (it != state.end() && !it->second.same(*dst)) dst->copy_(it->second);
  }
  return result;
}

void Module::train(bool on) {
  training_ = on;
  if (on) on_prepare_inference(false);
  for (auto& [name, m] : children_) m->train(on);
}

void Module::zero_grad() {
  for (Tensor& p : parameters()) p.zero_grad();
}

void Module::requires_grad_(bool on) {
  for (Tensor& p : parameters()) p.set_requires_grad(on);
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (const Tensor& p : parameters())
    if (!trainable_only || p.requires_grad()) n += p.numel();
  return n;
}

void Module::prepare_inference() {
  eval();
  apply([](Module& m) { m.on_prepare_inference(true); });
}

void Module::release_inference() {
  apply([](Module& m) { m.on_prepare_inference(false); });
}

void Module::apply(const std::function<void(Module&)>& fn) {
  for (auto& [name, m] : children_) m->apply(fn);
  fn(*this);
}

const std::shared_ptr<Module>& ModuleList::operator[](size_t i) const {
  LMF_CHECK(i < items_.size(), IndexError, "ModuleList: index {} out of range for {} modules", i,
            items_.size());
  return items_[i];
}

}  // namespace lmf::nn
