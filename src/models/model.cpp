// The family-neutral parts of PretrainedModel: the default load, the load report, and
// save_pretrained as transformers writes a folder.
#include "lmforge/models/model.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/models/hf_loader.h"

namespace lmf::models {

std::string LoadReport::summary() const {
  std::string s;
  if (!prefix_change.empty()) s += fmt::format("checkpoint keys: {}\n", prefix_change);
  if (!renamed_keys.empty())
    s += fmt::format("renamed legacy keys: {}\n", fmt::join(renamed_keys, ", "));
  if (!missing_keys.empty())
    s += fmt::format("missing keys (newly initialised): {}\n", fmt::join(missing_keys, ", "));
  if (!unexpected_keys.empty())
    s += fmt::format("unexpected keys (not used): {}\n", fmt::join(unexpected_keys, ", "));
  if (pooler_missing)
    s += pooler_initialized
             ? "pooler: absent from the checkpoint, initialised from the given seed\n"
             : "pooler: absent from the checkpoint; pooler_output is refused "
               "(use cls or mean pooling, or --pooler-init-seed N)\n";
  return s.empty() ? "all keys matched\n" : s;
}

LoadReport PretrainedModel::load(const nn::StateDict& state, const LoadOptions& opt,
                                 const std::string& origin) {
  return load_hf_state_dict(*this, state, load_spec(), opt, architecture(), origin);
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  LMF_CHECK(fd >= 0, IoError, "cannot create '{}': {}", tmp, std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail<IoError>("cannot write '{}': {}", tmp, std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail<IoError>("cannot write '{}' (fsync/rename of '{}'): {}", path, tmp, std::strerror(err));
  }
  const auto dir = std::filesystem::path(path).parent_path();  // persist the rename itself
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void save_pretrained(const PretrainedModel& model, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  LMF_CHECK(!ec && fs::is_directory(dir), IoError, "cannot create the model folder '{}': {}", dir,
            ec ? ec.message() : "a file of that name exists");
  nn::StateDict keep = state_dict_for_save(model, model.load_spec());
  for (const auto& k : model.keys_not_saved()) keep.erase(k);
  model.to_saved_layout(keep);
  io::StateDict tensors;
  for (const auto& [name, t] : keep) tensors[name] = t.detach().to(DType::f32).contiguous();
  io::save_safetensors(dir + "/model.safetensors", tensors);
  write_file_atomically(dir + "/config.json", model.config_json());
}

}  // namespace lmf::models
