// Model folders and sharded indexes: which checkpoint file to read, and stitching shards.
#include <filesystem>

#include "io/io_util.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/json.h"

namespace lmf::io {

namespace fs = std::filesystem;

namespace {

StateDict load_file(const fs::path& p, std::optional<DType> convert_to) {
  if (p.extension() == ".safetensors") return load_safetensors(p.string(), convert_to);
  return load_torch_bin(p.string(), convert_to);
}

}  // namespace

StateDict load_sharded_index(const std::string& index_path, std::optional<DType> convert_to) {
  const nlohmann::json j = read_json_file(index_path);
  LMF_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), IoError,
            "{}: a checkpoint index needs a \"weight_map\" object {{tensor name: shard file}}",
            index_path);
  const fs::path dir = fs::path(index_path).parent_path();
  std::map<std::string, StateDict> shards;
  StateDict out;
  for (const auto& [name, v] : j["weight_map"].items()) {
    LMF_CHECK(v.is_string(), IoError, "{}: weight_map['{}'] must be a file name", index_path,
              name);
    const std::string file = v.get<std::string>();
    const fs::path rel(file);
    bool escapes = file.empty() || rel.is_absolute();
    for (const auto& part : rel) escapes |= part == "..";
    LMF_CHECK(!escapes, IoError,
              "{}: shard '{}' of tensor '{}' is not a file name inside the index's folder",
              index_path, detail::printable(file), name);
    auto it = shards.find(file);
    if (it == shards.end()) {
      const fs::path p = dir / rel;
      LMF_CHECK(fs::is_regular_file(p), IoError,
                "{}: tensor '{}' is in shard '{}' but {} does not exist (incomplete download?)",
                index_path, name, file, p.string());
      it = shards.emplace(file, load_file(p, convert_to)).first;
    }
    auto t = it->second.find(name);
    LMF_CHECK(t != it->second.end(), IoError,
              "{}: tensor '{}' is listed in shard '{}' but that shard has no such tensor",
              index_path, name, file);
    out[name] = t->second;
  }
  return out;
}

StateDict load_checkpoint_dir(const std::string& dir, std::optional<DType> convert_to) {
  LMF_CHECK(fs::is_directory(dir), IoError, "checkpoint folder '{}' does not exist", dir);
  static const char* kNames[] = {"model.safetensors", "model.safetensors.index.json",
                                 "pytorch_model.bin", "pytorch_model.bin.index.json"};
  for (const char* name : kNames) {
    const fs::path p = fs::path(dir) / name;
    if (!fs::is_regular_file(p)) continue;
    if (p.extension() == ".json") return load_sharded_index(p.string(), convert_to);
    return load_file(p, convert_to);
  }
  fail<IoError>("no checkpoint in '{}': looked for {}", dir, fmt::join(kNames, ", "));
}

}  // namespace lmf::io
