// Module: a tree of named parameters, buffers and child modules whose dotted paths are the
// Hugging Face state-dict keys ("attention.self.query.weight"), with state_dict / load_state_dict,
// train/eval and gradient housekeeping. Subclasses register in their constructors.
#pragma once
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using StateDict = std::map<std::string, Tensor>;

struct LoadResult {
  std::vector<std::string> missing_keys;     // in the module, not in the state dict
  std::vector<std::string> unexpected_keys;  // in the state dict, not in the module
};

class Module {
 public:
  Module() = default;
  virtual ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Registration. Names are non-empty, contain no '.', and are unique among a module's
  // parameters, buffers and children (ValueError otherwise). The returned reference stays valid
  // for the module's lifetime; assigning to it replaces the tensor (e.g. to tie weights).
  Tensor& register_parameter(const std::string& name, Tensor tensor, bool requires_grad = true);
  // Non-persistent buffers (e.g. cached position ids) are left out of state_dict().
  Tensor& register_buffer(const std::string& name, Tensor tensor, bool persistent = true);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // Lookup by dotted path ("attention.self.query.weight"); ValueError when absent.
  Tensor& parameter(const std::string& path);
  Tensor& buffer(const std::string& path);
  std::shared_ptr<Module> child(const std::string& name) const;  // direct child; null if none

  // Parameters in registration order (own first, then each child's, depth first), each tensor
  // once even when shared (the first name wins), like torch.
  std::vector<Tensor> parameters() const;
  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;  // persistent and not
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }
  // Every module in the tree with its dotted path ("" for this one), each once.
  std::vector<std::pair<std::string, Module*>> named_modules();

  // Parameters and persistent buffers by key. Shared tensors appear under each of their names
  // (as in torch). The tensors are the module's own (no copy).
  StateDict state_dict() const;
  // Copies each entry into the existing storage (converting dtype; autograd not involved).
  // Validates first and changes nothing on error: ShapeError naming every key whose shape
  // differs (both shapes); in strict mode ValueError listing missing and unexpected keys.
  LoadResult load_state_dict(const StateDict& state, bool strict = true);

  // Training mode for this module and all descendants (dropout reads it).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // eval() plus inference-only weight layouts: from then on, the first time a Linear sees an
  // input of at most ops::packed_linear_max_rows() rows it copies its f32 weight into the panel
  // layout of the small-batch kernel (pack_linear_weight), 1.2-1.5x faster at 1-128 rows, at
  // the cost of that copy's memory. The copies are snapshots: train(true), load_state_dict()
  // and release_inference() drop them, and a weight tensor replaced since is packed again;
  // changing weights in place while prepared (an optimizer step in eval mode) is not supported.
  void prepare_inference();
  void release_inference();

  void zero_grad();                     // drops the gradient of every parameter
  void requires_grad_(bool on = true);  // freezes (false) or unfreezes every parameter
  int64_t num_parameters(bool trainable_only = false) const;
  // Calls fn on every module of the tree, children before their parent (torch's Module.apply).
  void apply(const std::function<void(Module&)>& fn);

 protected:
  // Builds (true) or drops (false) this module's inference layouts; see prepare_inference().
  virtual void on_prepare_inference(bool /*prepare*/) {}

 private:
  struct Slot {
    std::string name;
    Tensor tensor;
    bool persistent = true;
  };
  void check_new_name(const std::string& name) const;
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  Tensor* find_slot(const std::string& path, bool buffers);
  void collect(const std::string& prefix, bool params, bool buffers, bool persistent_only,
               std::vector<std::pair<std::string, Tensor*>>& out) const;

  std::deque<Slot> params_, buffers_;  // deque: references stay valid as more are added
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Children named "0", "1", ... (torch.nn.ModuleList), so layer i's keys read "layer.<i>.…".
class ModuleList : public Module {
 public:
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> module) {
    items_.push_back(module);
    return register_module(std::to_string(items_.size() - 1), std::move(module));
  }
  size_t size() const { return items_.size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const;
  // Item i as an M (ValueError when it is another type, IndexError when out of range).
  template <class M>
  std::shared_ptr<M> at(size_t i) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[i]);
    LMF_CHECK(m != nullptr, ValueError, "ModuleList: item {} is not of the requested type", i);
    return m;
  }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};

}  // namespace lmf::nn
