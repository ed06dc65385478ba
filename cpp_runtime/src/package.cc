#include "package.h"

#include <algorithm>

#include "sha256.h"

namespace aotc::internal {
namespace {

constexpr std::string_view kModelsDir = "data/aotc/";
constexpr std::string_view kManifestName = "/manifest.json";

std::string trimmed(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.remove_suffix(1);
  return std::string(text);
}

// Model names become path components and C strings: keep them plain.
bool valid_model_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  return name != "." && name != "..";
}

}  // namespace

Result<std::shared_ptr<Package>> Package::open(std::shared_ptr<const Bytes> bytes,
                                               PackageOptions options) {
  AOTC_ASSIGN_OR_RETURN(Archive archive, Archive::parse(std::move(bytes)));
  std::shared_ptr<Package> package(new Package(std::move(archive), std::move(options)));
  AOTC_RETURN_IF_ERROR(package->read_layout());
  return package;
}

Status Package::read_layout() {
  const auto& entries = archive_.entries();
  if (entries.empty()) return Error(Code::kCorruptPackage, "not an aotc package: the zip is empty");
  // Every entry lives under one root folder named after the package.
  size_t slash = entries[0].name.find('/');
  if (slash == std::string::npos || slash == 0)
    return Error(Code::kCorruptPackage,
                 "not an aotc package: entry '%s' is not under a root folder",
                 entries[0].name.c_str());
  root_ = entries[0].name.substr(0, slash + 1);
  for (const auto& entry : entries)
    if (entry.name.compare(0, root_.size(), root_) != 0)
      return Error(Code::kCorruptPackage,
                   "not an aotc package: entry '%s' is outside the root folder '%s'",
                   entry.name.c_str(), root_.c_str());

  const ArchiveEntry* format = archive_.find(root_ + "archive_format");
  if (!format)
    return Error(Code::kCorruptPackage, "not an aotc package: no %sarchive_format entry",
                 root_.c_str());
  AOTC_RETURN_IF_ERROR(archive_.check_crc(*format));
  std::string format_text = trimmed(archive_.text(*format));
  if (format_text != kArchiveFormat)
    return Error(Code::kIncompatible,
                 "not an aotc package: archive_format is '%.64s'%s (expected '%s')",
                 format_text.c_str(), format_text == "pt2" ? " (an AOTInductor package?)" : "",
                 kArchiveFormat);
  const ArchiveEntry* version = archive_.find(root_ + "archive_version");
  if (!version)
    return Error(Code::kCorruptPackage, "corrupt package: no %sarchive_version entry",
                 root_.c_str());
  AOTC_RETURN_IF_ERROR(archive_.check_crc(*version));
  std::string version_text = trimmed(archive_.text(*version));
  if (version_text != std::to_string(kFormatVersion))
    return Error(Code::kIncompatible,
                 "package format version '%.32s' is not supported by this runtime (supports %d)",
                 version_text.c_str(), kFormatVersion);

  const std::string models_prefix = root_ + std::string(kModelsDir);
  for (const auto& entry : entries) {
    std::string_view name = entry.name;
    if (name.compare(0, models_prefix.size(), models_prefix) != 0) continue;
    std::string_view rest = name.substr(models_prefix.size());
    size_t cut = rest.find('/');
    if (cut == std::string_view::npos || rest.substr(cut) != kManifestName) continue;
    ModelManifest model;
    model.name = std::string(rest.substr(0, cut));
    if (!valid_model_name(model.name))
      return Error(Code::kCorruptPackage, "corrupt package: invalid model name '%.128s'",
                   model.name.c_str());
    model.folder = models_prefix + model.name + "/";
    model.weights_folder = root_ + "data/weights/" + model.name + "/";
    AOTC_RETURN_IF_ERROR(archive_.check_crc(entry).annotate("model '" + model.name + "'"));
    model.text = std::string(archive_.text(entry));
    AOTC_ASSIGN_OR_RETURN(model.json, Json::parse(model.text));
    const Json& json = model.json;
    if (!json.is_object())
      return Error(Code::kCorruptPackage, "manifest of model '%s' is not a JSON object",
                   model.name.c_str());
    const Json* fmt = json.get("format");
    const Json* fmt_version = json.get("format_version");
    const Json* model_name = json.get("model");
    if (!fmt || !fmt->is_string() || fmt->as_string() != kArchiveFormat)
      return Error(Code::kCorruptPackage, "manifest of model '%s': \"format\" must be \"aotc\"",
                   model.name.c_str());
    if (!fmt_version || !fmt_version->is_int() || fmt_version->as_int() != kFormatVersion)
      return Error(Code::kIncompatible,
                   "manifest of model '%s': format_version is not %d (unsupported)",
                   model.name.c_str(), kFormatVersion);
    if (!model_name || !model_name->is_string() || model_name->as_string() != model.name)
      return Error(Code::kCorruptPackage,
                   "manifest of model '%s': \"model\" does not match its folder name",
                   model.name.c_str());
    const Json* listed = json.get("entries");
    if (!listed || !listed->is_object())
      return Error(Code::kCorruptPackage, "manifest of model '%s': \"entries\" must be an object",
                   model.name.c_str());
    models_.push_back(std::move(model));
  }
  if (models_.empty())
    return Error(Code::kCorruptPackage, "corrupt package: no %s*/manifest.json entry",
                 models_prefix.c_str());
  return OkStatus();
}

Result<const ModelManifest*> Package::find_model(std::string_view name) const {
  if (name.empty()) {
    if (models_.size() == 1) return &models_[0];
    std::string names;
    for (const auto& m : models_) names += (names.empty() ? "" : ", ") + m.name;
    return Error(Code::kInvalidArgument, "the package holds %zu models (%s): choose one by name",
                 models_.size(), names.c_str());
  }
  for (const auto& m : models_)
    if (m.name == name) return &m;
  std::string names;
  for (const auto& m : models_) names += (names.empty() ? "" : ", ") + m.name;
  return Error(Code::kNotFound, "no model named '%.*s' in the package (it holds: %s)",
               static_cast<int>(std::min<size_t>(name.size(), 128)), name.data(), names.c_str());
}

Result<std::string_view> Package::listed_entry(const ModelManifest& model,
                                               const std::string& full_name) const {
  const Json* listed = model.json.get("entries")->get(full_name);
  if (!listed)
    return Error(Code::kCorruptPackage,
                 "corrupt package: entry '%s' is not listed in the manifest of model '%s'",
                 full_name.c_str(), model.name.c_str());
  const ArchiveEntry* entry = archive_.find(full_name);
  if (!entry)
    return Error(Code::kCorruptPackage, "corrupt package: entry '%s' is missing",
                 full_name.c_str());
  const Json* size = listed->get("size");
  if (!size || !size->is_int() || static_cast<uint64_t>(size->as_int()) != entry->size)
    return Error(Code::kCorruptPackage,
                 "corrupt package: entry '%s' has %llu bytes but the manifest lists %s",
                 full_name.c_str(), static_cast<unsigned long long>(entry->size),
                 size && size->is_int() ? std::to_string(size->as_int()).c_str() : "no size");
  return archive_.text(*entry);
}

Result<std::string_view> Package::verified_entry(const ModelManifest& model,
                                                 const std::string& full_name) const {
  AOTC_ASSIGN_OR_RETURN(std::string_view bytes, listed_entry(model, full_name));
  const Json* digest = model.json.get("entries")->get(full_name)->get("sha256");
  if (!digest || !digest->is_string())
    return Error(Code::kCorruptPackage, "corrupt package: no sha256 for entry '%s'",
                 full_name.c_str());
  std::string actual = sha256_hex(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (actual != digest->as_string())
    return Error(Code::kCorruptPackage,
                 "corrupt package: entry '%s' fails its sha256 check (manifest %.64s, content %s)",
                 full_name.c_str(), digest->as_string().c_str(), actual.c_str());
  return bytes;
}

}  // namespace aotc::internal
