#!/usr/bin/env python3
"""The rollgate image archive (docs/image.md): one tar that is both an OCI
image layout (index.json, oci-layout, blobs/sha256/...) for `podman load` and
`skopeo copy oci-archive:...`, and a Docker archive (manifest.json naming the
same blobs) for `docker load` on every Docker version, with or without the
containerd image store -- the layout `docker save` writes since Docker 25.

  image-archive.py pack SAVED OUT NAME:TAG
      SAVED: `podman save --uncompressed --format oci-archive` of one image.
      Writes OUT with every blob checked against its digest, in a normalised
      tar (sorted, owner 0, mtime SOURCE_DATE_EPOCH), so two builds of one
      commit give byte-identical archives.
  image-archive.py describe ARCHIVE [--json]
      Config digest, layer digests and sizes, user, entrypoint, labels.
  image-archive.py files ARCHIVE
      The image's file system, one path a line (type, mode, uid:gid, path),
      from its layers in order (whiteouts applied).
"""
import hashlib
import io
import json
import os
import sys
import tarfile

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
PLAIN_LAYERS = ("application/vnd.oci.image.layer.v1.tar",
                "application/vnd.docker.image.rootfs.diff.tar")


class ArchiveError(Exception):
    pass


def read_member(tar, name):
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        raise ArchiveError("%s: missing" % name)
    return f.read()


def blob_path(digest):
    algo, _, hexd = digest.partition(":")
    if algo != "sha256" or len(hexd) != 64 or any(c not in "0123456789abcdef" for c in hexd):
        raise ArchiveError("unsupported digest %r" % digest)
    return "blobs/sha256/" + hexd


def load_image(path):
    """(tar, index, manifest descriptor, manifest, config) of a one-image archive."""
    tar = tarfile.open(path)
    index = json.loads(read_member(tar, "index.json"))
    descs = [d for d in index.get("manifests", []) if d.get("mediaType") == OCI_MANIFEST]
    if len(descs) != 1:
        raise ArchiveError("index.json: expected one image manifest, found %d" % len(descs))
    manifest = json.loads(read_member(tar, blob_path(descs[0]["digest"])))
    config = json.loads(read_member(tar, blob_path(manifest["config"]["digest"])))
    return tar, index, descs[0], manifest, config


def checked_blob(tar, desc):
    data = read_member(tar, blob_path(desc["digest"]))
    if "sha256:" + hashlib.sha256(data).hexdigest() != desc["digest"] or len(data) != desc["size"]:
        raise ArchiveError("%s: content does not match its digest or size" % desc["digest"])
    return data


def docker_name(name):
    """The name Docker gives NAME:TAG (docker.io/library/NAME:TAG for a bare name)."""
    first = name.split("/")[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return "docker.io/" + (name if "/" in name else "library/" + name)


def pack(saved, out, name):
    if ":" not in name.rsplit("/", 1)[-1]:
        raise ArchiveError("%s: expected NAME:TAG" % name)
    tar, _, desc, manifest, config = load_image(saved)
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    layers = manifest.get("layers", [])
    if [l.get("mediaType") for l in layers] != [PLAIN_LAYERS[0]] * len(layers):
        raise ArchiveError("layers are compressed: save with podman save --uncompressed")
    if [l["digest"] for l in layers] != diff_ids:
        raise ArchiveError("layer digests differ from the config's diff_ids")
    blobs = {}
    for d in [desc, manifest["config"]] + layers:
        blobs[blob_path(d["digest"])] = checked_blob(tar, d)
    tar.close()

    repo_tag = name[len("localhost/"):] if name.startswith("localhost/") else name
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": desc["digest"],
            "size": desc["size"],
            "annotations": {
                # Docker's containerd image store names the image by this one,
                "io.containerd.image.name": docker_name(repo_tag),
                # podman load and skopeo (oci-archive:FILE:REF) by this one.
                "org.opencontainers.image.ref.name": "localhost/" + repo_tag
                if "/" not in repo_tag else repo_tag,
            },
        }],
    }
    # Docker without the containerd image store reads only manifest.json.
    docker_manifest = [{
        "Config": blob_path(manifest["config"]["digest"]),
        "RepoTags": [repo_tag],
        "Layers": [blob_path(l["digest"]) for l in layers],
    }]
    files = {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "index.json": json.dumps(index, separators=(",", ":")).encode(),
        "manifest.json": json.dumps(docker_manifest, separators=(",", ":")).encode(),
    }
    files.update(blobs)
    write_tar(out, files)


def write_tar(out, files):
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    tmp = out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as t:
        for d in ("blobs", "blobs/sha256"):
            t.addfile(tar_info(d, tarfile.DIRTYPE, 0o755, 0, mtime))
        for n in sorted(files):
            data = files[n]
            t.addfile(tar_info(n, tarfile.REGTYPE, 0o644, len(data), mtime), io.BytesIO(data))
    os.replace(tmp, out)


def tar_info(name, kind, mode, size, mtime):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.size, ti.mtime = kind, mode, size, mtime
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def describe(path, as_json):
    tar, _, desc, manifest, config = load_image(path)
    layers = [{"digest": l["digest"], "size": l["size"]} for l in manifest["layers"]]
    c = config.get("config", {})
    info = {
        "manifest": desc["digest"],
        "config": manifest["config"]["digest"],
        "layers": layers,
        "diff_ids": config.get("rootfs", {}).get("diff_ids", []),
        "size": sum(l["size"] for l in layers),
        "created": config.get("created"),
        "user": c.get("User"),
        "entrypoint": c.get("Entrypoint"),
        "cmd": c.get("Cmd"),
        "labels": c.get("Labels", {}),
    }
    tar.close()
    if as_json:
        print(json.dumps(info, indent=1, sort_keys=True))
        return
    print("image config %s" % info["config"])
    for l in layers:
        print("image layer  %s (%d bytes)" % (l["digest"], l["size"]))
    print("image size   %d bytes uncompressed (%.1f MB)" % (info["size"], info["size"] / 1e6))


def files(path):
    tar, _, _, manifest, _ = load_image(path)
    fs = {}
    for l in manifest["layers"]:
        data = read_member(tar, blob_path(l["digest"]))
        with tarfile.open(fileobj=io.BytesIO(data)) as lt:
            for m in lt.getmembers():
                n = m.name[2:] if m.name.startswith("./") else m.name
                p = "/" + n.strip("/") if n not in (".", "") else "/"
                base = os.path.basename(p)
                if base.startswith(".wh."):
                    gone = os.path.join(os.path.dirname(p), base[4:])
                    for k in [k for k in fs if k == gone or k.startswith(gone + "/")]:
                        del fs[k]
                    continue
                kind = "d" if m.isdir() else "l" if m.issym() else "h" if m.islnk() else "f"
                extra = " -> " + m.linkname if m.issym() else ""
                fs[p] = "%s %04o %d:%d %s%s" % (kind, m.mode & 0o7777, m.uid, m.gid, p, extra)
    tar.close()
    for p in sorted(fs):
        print(fs[p])


def main(argv):
    try:
        if len(argv) == 5 and argv[1] == "pack":
            pack(argv[2], argv[3], argv[4])
        elif len(argv) in (3, 4) and argv[1] == "describe":
            describe(argv[2], argv[3:] == ["--json"])
        elif len(argv) == 3 and argv[1] == "files":
            files(argv[2])
        else:
            sys.stderr.write(__doc__)
            return 2
    except (ArchiveError, OSError, tarfile.TarError, ValueError, KeyError) as e:
        sys.stderr.write("image-archive: %s: %s\n" % (argv[2], e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
