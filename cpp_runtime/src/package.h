// Package: an opened .pt2 file (docs/FORMAT.md). Checks the archive
// structure, archive_format/archive_version and parses each model's
// manifest.json; entry contents are verified lazily against the manifest's
// sha256 when a model is loaded.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "archive.h"
#include "json.h"
#include "status.h"

namespace aotc::internal {

inline constexpr const char* kArchiveFormat = "aotc";
inline constexpr int kFormatVersion = 1;

struct PackageOptions {
  bool verify_weights = true;
  int library_loading = 0;  // aotc_library_loading_e
  std::string temp_dir;     // empty: $TMPDIR or /tmp
};

// One model's manifest and where its entries live.
struct ModelManifest {
  std::string name;
  std::string folder;          // "<root>/data/aotc/<name>/"
  std::string weights_folder;  // "<root>/data/weights/<name>/"
  std::string text;            // manifest.json as stored
  Json json;
};

class Package final {
 public:
  static Result<std::shared_ptr<Package>> open(std::shared_ptr<const Bytes> bytes,
                                               PackageOptions options);

  const Archive& archive() const { return archive_; }
  const std::string& root() const { return root_; }
  const PackageOptions& options() const { return options_; }
  const std::vector<ModelManifest>& models() const { return models_; }

  // |name| empty: the only model (error listing the names if several).
  Result<const ModelManifest*> find_model(std::string_view name) const;

  // Bytes of |full_name| after checking its size and sha256 against the
  // model's manifest "entries" table (an entry the manifest does not list is
  // refused: everything a model uses must be accounted for).
  Result<std::string_view> verified_entry(const ModelManifest& model,
                                          const std::string& full_name) const;
  // Same lookup without hashing (weights when verification is off).
  Result<std::string_view> listed_entry(const ModelManifest& model,
                                        const std::string& full_name) const;

 private:
  Package(Archive archive, PackageOptions options)
      : archive_(std::move(archive)), options_(std::move(options)) {}
  Status read_layout();

  Archive archive_;
  PackageOptions options_;
  std::string root_;
  std::vector<ModelManifest> models_;
};

}  // namespace aotc::internal
