"""Downloads from a running ACS Hub with the real huggingface_hub client, as a user would.

Usage: python check_hf_client.py JOB.json

JOB.json: {"endpoint": the hub, "repo": a zoo id, "modes": [revision, revision],
           "checkpoint": a converted checkpoint's id,
           "resume": {"endpoint": a proxy in front of the hub that drops the first download of
                      "file" before its end, "file": a file of the checkpoint larger than the
                      client's download chunk (10 MiB), "cache": a cache folder of its own}}

Prints one JSON report on stdout: the sha256 of every downloaded file, what the API calls
listed, the tensors of model.safetensors as safetensors.torch.load_file reads them, and the
exceptions the client raised for an unknown repository, revision and file (their class names,
base classes included). Needs huggingface_hub, safetensors and torch (tools/python/setup-venv.sh).
"""
import hashlib
import json
import os
import sys

from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from safetensors.torch import load_file


def sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def commit_of(path):
    """The commit a cached file lies under: .../snapshots/<commit>/<file>."""
    return os.path.basename(os.path.dirname(path))


def downloaded(path):
    return {'sha256': sha256(path), 'size': os.path.getsize(path), 'commit': commit_of(path)}


def entry(f):
    """A RepoFile as get_paths_info and list_repo_tree give it."""
    return {
        'path': f.path,
        'size': f.size,
        'blob_id': f.blob_id,
        'lfs_sha256': f.lfs.sha256 if f.lfs else None,
        'last_commit': f.last_commit.oid if f.last_commit else None,
    }


def raised(call):
    try:
        call()
    except Exception as err:  # the class is what is checked
        return {'class': type(err).__name__, 'classes': [c.__name__ for c in type(err).__mro__], 'message': str(err)[:500]}
    return None


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    hub = job['endpoint']
    repo = job['repo']
    first, second = job['modes']
    api = HfApi(endpoint=hub)
    report = {'downloads': {}}

    # The first request converts; the second mode is another conversion, another commit.
    for mode in (first, second):
        path = hf_hub_download(repo_id=repo, filename='model.safetensors', revision=mode, endpoint=hub)
        report['downloads'][mode] = downloaded(path)
        if mode == first:
            tensors = load_file(path)
            report['tensors'] = {name: {'shape': list(t.shape), 'dtype': str(t.dtype).replace('torch.', '')} for name, t in tensors.items()}

    folder = snapshot_download(repo_id=repo, revision=first, endpoint=hub)
    report['snapshot'] = {'commit': os.path.basename(folder), 'files': {name: sha256(os.path.join(folder, name)) for name in sorted(os.listdir(folder))}}

    info = api.model_info(repo, revision=first, files_metadata=True)
    report['model_info'] = {
        'id': info.id,
        'sha': info.sha,
        'siblings': [{'name': s.rfilename, 'size': s.size, 'blob_id': s.blob_id, 'lfs': [s.lfs.sha256, s.lfs.size, s.lfs.pointer_size] if s.lfs else None} for s in info.siblings],
    }
    report['list_repo_files'] = api.list_repo_files(repo, revision=first)
    report['paths_info'] = [entry(f) for f in api.get_paths_info(repo, ['model.onnx', 'card.json', 'weights.bin'], revision=first, expand=True)]
    report['paths_info_one'] = [entry(f) for f in api.get_paths_info(repo, 'model.pth', revision=second)]
    report['file_exists'] = {
        'model.onnx': api.file_exists(repo, 'model.onnx', revision=first),
        'weights.bin': api.file_exists(repo, 'weights.bin', revision=first),
    }

    checkpoint = f"checkpoints/{job['checkpoint']}"
    # A download whose connection drops before its end: the client keeps the whole chunks it
    # received and asks for the rest with Range.
    resume = job['resume']
    path = hf_hub_download(repo_id=checkpoint, filename=resume['file'], revision='main', endpoint=resume['endpoint'], cache_dir=resume['cache'])
    report['resumed'] = downloaded(path)

    path = hf_hub_download(repo_id=checkpoint, filename='model.safetensors', revision='main', endpoint=hub)
    report['checkpoint'] = {
        'model.safetensors': downloaded(path),
        'sha': api.model_info(checkpoint, revision='main').sha,
        'files': api.list_repo_files(checkpoint),
    }

    report['errors'] = {
        'repository': raised(lambda: hf_hub_download(repo_id=repo.split('/')[0] + '/no-such-model', filename='model.onnx', revision=first, endpoint=hub)),
        'revision': raised(lambda: hf_hub_download(repo_id=repo, filename='model.onnx', revision='v9', endpoint=hub)),
        'file': raised(lambda: hf_hub_download(repo_id=repo, filename='weights.bin', revision=first, endpoint=hub)),
        'info_repository': raised(lambda: api.model_info(repo.split('/')[0] + '/no-such-model')),
        'info_revision': raised(lambda: api.model_info(repo, revision='v9')),
        'checkpoint_revision': raised(lambda: api.model_info(checkpoint, revision=second)),
    }
    print(json.dumps(report, indent=1))


if __name__ == '__main__':
    main()
