"""Option files: BasicSR/HAT format accepted, every mistake rejected at load time naming the key."""

from __future__ import annotations

import copy
import math
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehat.options.schema import OptionsError, to_plain
from ehat.options.train import experiments_root, load_options, validate_options
from tests.helpers import REPO_ROOT, make_data, tiny_options


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("data"))


@pytest.fixture
def opt(tmp_path, data):
    return tiny_options(tmp_path, data)


def reject(opt: dict, key: str, *, check_paths: bool = True, contains: str = "") -> OptionsError:
    with pytest.raises(OptionsError) as info:
        validate_options(opt, check_paths=check_paths)
    assert info.value.key == key, str(info.value)
    assert key in str(info.value)
    assert contains in str(info.value)
    return info.value


def test_valid_options_get_defaults_filled(opt):
    out = validate_options(opt)
    assert out.train.grad_accum_steps == 1
    assert out.train.amp is None
    assert out.datasets["train"].scale == 4 and out.datasets["train"].phase == "train"
    assert out.datasets["val"].phase == "val"
    assert out.logger.use_tb_logger is False


def test_validation_is_idempotent(opt):
    once = validate_options(opt)
    assert validate_options(to_plain(once)) == once


@pytest.mark.parametrize(
    ("section", "typo", "suggestion"),
    [
        ("", "manual_sed", "manual_seed"),
        ("train", "total_iters", "total_iter"),
        ("val", "val_frq", "val_freq"),
        ("logger", "print_frequency", "print_freq"),
        ("datasets.train", "batch_size_per_gpus", "batch_size_per_gpu"),
        ("train.optim_g", "betas1", "betas"),
        ("network_g", "num_feats", "num_feat"),
        ("path", "pretrain_netwrok_g", "pretrain_network_g"),
    ],
)
def test_typo_is_rejected_with_the_closest_key(opt, section, typo, suggestion):
    node = opt
    for part in filter(None, section.split(".")):
        node = node[part]
    node[typo] = node.pop(suggestion, 1)
    err = reject(opt, f"{section}.{typo}" if section else typo)
    assert f"did you mean '{suggestion}'" in str(err)


@pytest.mark.parametrize(
    ("dotted", "value"),
    [
        ("train.total_iter", "many"),
        ("train.total_iter", 2.5),
        ("train.total_iter", True),
        ("train.ema_decay", "0.999"),
        ("train.ema_decay", 1.5),
        ("train.amp", "fp8"),
        ("train.grad_clip", math.nan),
        ("datasets.train.use_hflip", "yes"),
        ("datasets.train.gt_size", 30),  # not a multiple of the scale
        ("logger.print_freq", 0),
        ("num_gpu", "all"),
        ("scale", [4]),
        ("model_type", "SwinIRModel"),
        ("train.optim_g.type", "Adamm"),
        ("train.scheduler.type", "StepLR"),
        ("train.pixel_opt.type", "L1"),
        ("network_g.type", "SRVGGNetCompakt"),
        ("val.best_metric", "psnrr"),
        ("datasets.val.type", "PairedImageDatset"),
    ],
)
def test_wrong_value_is_rejected_naming_the_key(opt, dotted, value):
    *parents, last = dotted.split(".")
    node = opt
    for p in parents:
        node = node[p]
    node[last] = value
    reject(opt, dotted)


def test_network_arguments_are_type_checked_against_the_constructor(opt):
    opt["network_g"] = {"type": "ehat_tiny", "embed_dim": "wide"}
    reject(opt, "network_g.embed_dim")
    opt["network_g"] = {"type": "EHAT", "dual_attentoin": "body"}
    reject(opt, "network_g.dual_attentoin", contains="did you mean 'dual_attention'")


def test_float_written_integers_are_accepted_as_in_basicsr_configs(opt):
    opt["val"]["val_freq"] = 5e3
    opt["logger"]["save_checkpoint_freq"] = 1e4
    out = validate_options(opt)
    assert out.val.val_freq == 5000 and isinstance(out.val.val_freq, int)


def test_missing_dataset_folder_is_rejected_naming_the_key(opt, tmp_path):
    opt["datasets"]["train"]["dataroot_lq"] = str(tmp_path / "nope")
    reject(opt, "datasets.train.dataroot_lq", contains="nope")
    validate_options(opt, check_paths=False)


def test_missing_pretrain_or_resume_file_is_rejected(opt, tmp_path):
    opt["path"]["pretrain_network_g"] = str(tmp_path / "missing.pth")
    reject(opt, "path.pretrain_network_g")
    opt["path"]["pretrain_network_g"] = None
    opt["path"]["resume_state"] = str(tmp_path / "10.state")
    reject(opt, "path.resume_state")


def test_required_sections_and_keys(opt):
    for key in ("name", "network_g", "datasets", "train"):
        broken = copy.deepcopy(opt)
        del broken[key]
        reject(broken, key)
    del opt["datasets"]["train"]["batch_size_per_gpu"]
    reject(opt, "datasets.train.batch_size_per_gpu")


def test_cosine_schedule_must_cover_total_iter(opt):
    opt["train"]["scheduler"] = {"type": "CosineAnnealingRestartLR", "periods": [3], "restart_weights": [1]}
    reject(opt, "train.scheduler.periods")


def test_non_strict_loading_is_accepted(opt):
    """HAT's x2 -> x4 recipe (the load itself logs every key it leaves out: test_train_hat_recipes)."""
    opt["path"]["strict_load_g"] = False
    assert validate_options(opt).path.strict_load_g is False


def test_hat_style_config_validates_unchanged(tmp_path, data):
    """A config written the HAT way (HATModel, metrics with 'better', !!float numbers, wandb block)."""
    text = textwrap.dedent(
        f"""
        name: hat_style
        model_type: HATModel
        scale: 4
        num_gpu: auto
        manual_seed: 0
        datasets:
          train:
            name: DF2K
            type: PairedImageDataset
            dataroot_gt: {data["train"][0]}
            dataroot_lq: {data["train"][1]}
            meta_info_file: ~
            io_backend:
              type: disk
            gt_size: 256
            use_hflip: true
            use_rot: true
            use_shuffle: true
            num_worker_per_gpu: 6
            batch_size_per_gpu: 4
            dataset_enlarge_ratio: 1
            prefetch_mode: ~
          val_1:
            name: Set5
            type: PairedImageDataset
            dataroot_gt: {data["val"][0]}
            dataroot_lq: {data["val"][1]}
            io_backend:
              type: disk
        network_g:
          type: HAT
          upscale: 4
          in_chans: 3
          img_size: 64
          window_size: 16
          compress_ratio: 3
          squeeze_factor: 30
          conv_scale: 0.01
          overlap_ratio: 0.5
          img_range: 1.
          depths: [6, 6, 6, 6, 6, 6]
          embed_dim: 180
          num_heads: [6, 6, 6, 6, 6, 6]
          mlp_ratio: 2
          upsampler: 'pixelshuffle'
          resi_connection: '1conv'
        path:
          pretrain_network_g: ~
          param_key_g: 'params_ema'
          strict_load_g: true
          resume_state: ~
        train:
          ema_decay: 0.999
          optim_g:
            type: Adam
            lr: !!float 2e-4
            weight_decay: 0
            betas: [0.9, 0.99]
          scheduler:
            type: MultiStepLR
            milestones: [250000, 400000, 450000, 475000]
            gamma: 0.5
          total_iter: 500000
          warmup_iter: -1
          pixel_opt:
            type: L1Loss
            loss_weight: 1.0
            reduction: mean
        val:
          val_freq: !!float 5e3
          save_img: false
          pbar: False
          metrics:
            psnr:  # EHAT's built-in RGB PSNR has this name: reported as psnr_opt (see below)
              type: calculate_psnr
              crop_border: 4
              test_y_channel: true
              better: higher
            ssim:
              type: calculate_ssim
              crop_border: 4
              test_y_channel: true
              better: higher
        logger:
          print_freq: 100
          save_checkpoint_freq: !!float 5e3
          use_tb_logger: true
          wandb:
            project: ~
            resume_id: ~
        dist_params:
          backend: nccl
          port: 29500
        """
    )
    path = tmp_path / "hat.yml"
    path.write_text(text)
    out = load_options(path)
    assert out.model_type == "HATModel" and out.val.metrics["ssim"].better == "higher"
    assert out.val.metrics["psnr_opt"].renamed_from == "psnr"
    assert out.datasets["val_1"].name == "Set5"


@pytest.mark.parametrize(
    "path", sorted((REPO_ROOT / "options" / "train").glob("*.yml")), ids=lambda p: p.name
)
def test_shipped_training_options_validate(path):
    out = load_options(path, check_paths=False)
    assert out.train.total_iter > 0


def test_yaml_is_read_safely(tmp_path):
    path = tmp_path / "evil.yml"
    marker = tmp_path / "pwned"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(OptionsError) as info:
        load_options(path)
    assert "not valid YAML" in str(info.value) and str(path) in str(info.value)
    assert not marker.exists()


def test_load_error_names_the_file(tmp_path, opt):
    opt["train"]["totl_iter"] = 3
    path = tmp_path / "typo.yml"
    path.write_text(yaml.safe_dump(opt))
    with pytest.raises(OptionsError, match=r"train\.totl_iter.*typo\.yml"):
        load_options(path)


def test_outputs_default_to_experiments_under_the_current_folder(opt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opt["path"].pop("experiments_root")
    assert experiments_root(validate_options(opt)) == tmp_path / "experiments" / "tiny"


# ------------------------------------------------------------------------------------ fuzzing
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=3),
    ),
    max_leaves=6,
)


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    return out


def _typo(key: str, draw_index: int) -> str:
    if not key:
        return "x"
    i = draw_index % len(key)
    return key[:i] + key[i + 1 :] if len(key) > 1 else key + "_"


def _assert_only_options_error(candidate: object) -> None:
    try:
        validate_options(candidate, check_paths=False)
    except OptionsError as exc:
        assert exc.key and exc.key in str(exc)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_option_files_fail_only_with_options_error(opt, data):
    """Random edits (values replaced, keys typo'd, deleted or added) never crash with another exception."""
    candidate = copy.deepcopy(opt)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(candidate) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = candidate
        for k in path[:-1]:
            parent = parent[k]
        action = data.draw(st.sampled_from(["value", "typo", "delete", "add"]))
        if action == "value":
            parent[path[-1]] = data.draw(_values)
        elif action == "typo" and isinstance(path[-1], str):
            parent[_typo(path[-1], data.draw(st.integers(0, 50)))] = parent.pop(path[-1])
        elif action == "delete":
            del parent[path[-1]]
        else:
            parent[data.draw(st.text(max_size=8))] = data.draw(_values)
    _assert_only_options_error(candidate)


@settings(max_examples=50, deadline=None)
@given(candidate=_values)
def test_random_documents_fail_only_with_options_error(candidate):
    _assert_only_options_error(candidate)


# ------------------------------------------------------------------------ defects (issue 13)
def test_embed_dim_below_squeeze_factor_is_rejected_at_load(opt):
    """HAT's channel attention has embed_dim // squeeze_factor channels: 0 would fail at step 1."""
    opt["network_g"] = {"type": "ehat_tiny", "embed_dim": 9}  # preset squeeze_factor 10, heads 3
    reject(opt, "network_g.embed_dim", contains="squeeze_factor")


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"embed_dim": 2, "num_heads": [1, 1], "squeeze_factor": 1}, "compress_ratio"),  # 2 // 3 == 0
        ({"embed_dim": 40}, "num_heads"),  # 40 % 3 != 0
    ],
)
def test_embed_dim_constraints_name_the_key_and_the_rule(opt, changes, words):
    opt["network_g"] = {"type": "ehat_tiny", **changes}
    reject(opt, "network_g.embed_dim", contains=words)


def test_typo_suggestions_stay_within_the_same_kind_of_key(opt):
    """A list-valued stray key is not 'corrected' to a boolean flag of another meaning."""
    opt["dists"] = [1, 30]  # close to the flag dist
    err = reject(opt, "dists")
    assert "did you mean" not in str(err)
    assert "valid keys" in str(err)


def test_every_key_listed_as_valid_is_accepted(opt):
    """The keys an unknown-key message lists are keys the validator accepts (no listed-then-rejected key)."""
    opt["train"]["no_such_key"] = 1
    opt["train"]["gan_opt"] = {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 0.1}
    err = reject(opt, "train.no_such_key")
    listed = str(err).split("valid keys: ")[1].split(" (in")[0].split(", ")
    assert "pixel_opt" in listed and "gan_opt" in listed
    for key in listed:
        message = ""
        trial = copy.deepcopy(opt)
        del trial["train"]["no_such_key"], trial["train"]["gan_opt"]
        trial["train"].setdefault(key, None)
        try:
            validate_options(trial)
        except OptionsError as exc:
            message = str(exc)
        assert "unknown" not in message, (key, message)


def test_gan_loss_needs_a_gan_model_type(opt):
    opt["train"]["gan_opt"] = {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 0.1}
    err = reject(opt, "train.gan_opt", contains="RealHATGANModel")
    assert "EHATModel" in str(err)  # the model type given


def test_user_metric_named_like_a_builtin_is_renamed_and_said_once(opt):
    from ehat.options.components import metric_renames

    opt["val"]["metrics"] = {
        "psnr": {"type": "calculate_psnr", "crop_border": 4, "test_y_channel": True},
        "psnr_opt": {"type": "calculate_ssim", "crop_border": 4},
    }
    metrics = validate_options(opt).val.metrics
    assert set(metrics) == {"psnr_opt", "psnr_opt2"} and metrics["psnr_opt2"].renamed_from == "psnr"
    (line,) = metric_renames(metrics)
    assert all(w in line for w in ("val.metrics.psnr", "'psnr_opt2'", "built-in", "psnr_y", "ssim_y"))


@pytest.mark.parametrize(
    ("dotted", "value"),
    [("datasets.train.prefetch_mode", "cuda"), ("datasets.train.num_prefetch_queue", 4)],
)
def test_basicsr_keys_ehat_does_not_implement_are_refused(opt, dotted, value):
    *parents, last = dotted.split(".")
    node = opt
    for p in parents:
        node = node[p]
    node[last] = value
    reject(opt, dotted, contains="not supported by EHAT")


@pytest.mark.parametrize(("given", "mode"), [(True, "full"), (False, "false"), ("blocks", "blocks")])
def test_compile_accepts_modes_and_yaml_booleans(opt, given, mode):
    opt["train"]["compile"] = given
    assert validate_options(opt).train.compile == mode


def test_unknown_compile_mode_is_rejected(opt):
    opt["train"]["compile"] = "fast"
    reject(opt, "train.compile", contains="blocks")


def test_options_are_typed_objects(opt):
    out = validate_options(opt)
    assert out.train.total_iter == 6 and out.datasets["train"].gt_size == 32
    assert out.val.pbar is False and out.logger.keep_last == 3 and out.train.tf32 is False
    with pytest.raises(AttributeError):
        out.train.total_iters  # noqa: B018


def test_options_error_is_an_ehat_error():
    from ehat.errors import EhatError

    assert issubclass(OptionsError, EhatError)


def test_folder_given_as_pretrained_weights_says_it_is_a_folder(opt, tmp_path):
    opt["path"]["pretrain_network_g"] = str(tmp_path)
    reject(opt, "path.pretrain_network_g", contains="is a folder")


# ------------------------------------------------------------------------------ checks the trainer made
def test_dist_that_disagrees_with_the_launcher_is_refused_at_load(opt):
    """Raised by the trainer after building the network and the data before; now where options are read."""
    opt["dist"] = True
    with pytest.raises(OptionsError) as info:
        validate_options(opt, launcher="none")
    assert info.value.key == "dist" and "is true but train.py runs with --launcher none" in str(info.value)
    assert validate_options(opt, launcher="pytorch").dist is True
    assert validate_options(opt).dist is True  # launcher not known (a config checked elsewhere)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_num_gpu_this_machine_lacks_is_refused_at_load(opt):
    opt["num_gpu"] = 1
    with pytest.raises(OptionsError) as info:
        validate_options(opt, launcher="none")
    assert info.value.key == "num_gpu" and "set num_gpu: 0" in str(info.value)
    assert validate_options(opt).num_gpu == 1  # launcher not known: the device is not resolved


def test_network_whose_constructor_refuses_its_arguments_is_refused_at_load(opt):
    """The names and types pass the signature check; EHAT's constructor refuses the value (ValueError)."""
    opt["network_g"] = {"type": "ehat_tiny", "dual_attention": "everywhere"}
    reject(opt, "network_g", contains="cannot build the network: dual_attention must be one of")


def test_new_param_keys_matching_no_parameter_are_refused_at_load(opt):
    """SRVGGNetCompact has no BSA / DANet parameters: nothing would get train.new_param_lr."""
    opt["train"]["new_param_lr"] = 1e-2
    reject(opt, "train.new_param_keys", contains="no parameter name contains any of ['branch_weights'")
    opt["train"]["new_param_keys"] = ["body.0"]
    assert validate_options(opt).train.new_param_keys == ["body.0"]


def test_gan_resume_state_without_a_discriminator_is_refused_at_load(opt, tmp_path):
    """A real-world GAN run on the datasets' LR (no degradation keys, no VGG) resuming a state file."""
    import torch

    opt.update(model_type="RealHATGANModel", high_order_degradation=False, gt_size=32, queue_size=4)
    opt["network_d"] = {"type": "UNetDiscriminatorSN", "num_in_ch": 3, "num_feat": 8}
    opt["train"]["optim_d"] = {"type": "Adam", "lr": 1e-4}
    opt["train"]["gan_opt"] = {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 0.1}
    state = tmp_path / "2.state"
    torch.save({"iter": 2, "net": {}}, state)
    opt["path"]["resume_state"] = str(state)
    reject(opt, "path.resume_state", contains="holds no discriminator")
    assert validate_options(opt, check_paths=False).path.resume_state == str(state)  # the file is not read
    torch.save({"iter": 2, "net": {}, "net_d": {}}, state)
    assert validate_options(opt).path.resume_state == str(state)


def test_niqe_on_validation_images_too_small_for_two_blocks_is_refused_at_load(opt):
    """The tiny validation outputs (LR x 4 = the HR crops, under 96 pixels) hold no 96x96 block: was raised
    by validation at the first validation."""
    from PIL import Image

    opt["val"]["metrics"] = {"niqe": {"type": "calculate_niqe", "crop_border": 0, "better": "lower"}}
    err = reject(opt, "val.metrics.niqe", contains="NIQE needs at least two 96x96 blocks")
    hr = sorted(Path(opt["datasets"]["val"]["dataroot_gt"]).iterdir())[0]
    w, h = Image.open(hr).size
    assert f"an output is {w}x{h} after crop_border" in str(err)
    assert validate_options(opt, check_paths=False).val.metrics["niqe"].type == "calculate_niqe"


# ------------------------------------------------------------------------------ train.py errors
def _run_cli(tmp_path, opt: dict, capsys, *extra: str) -> tuple[int, str]:
    from ehat.train.cli import main

    path = tmp_path / "opt.yml"
    path.write_text(yaml.safe_dump(opt))
    code = main(["-opt", str(path), *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "args", "words"),
    [
        ({"dist": True}, (), "option 'dist': is true but train.py runs with --launcher none"),
        ({}, ("--launcher", "pytorch"), "--launcher pytorch but $RANK is not set"),
        ({"train": {"total_iters": 3}}, (), "option 'train.total_iters': unknown key"),
    ],
)
def test_train_py_prints_one_line_for_a_user_error(tmp_path, opt, capsys, monkeypatch, change, args, words):
    monkeypatch.delenv("RANK", raising=False)
    opt.update({k: v for k, v in change.items() if k != "train"})
    opt["train"].update(change.get("train", {}))
    code, err = _run_cli(tmp_path, opt, capsys, *args)
    assert code == 1 and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_num_gpu_without_cuda_is_one_line_naming_the_key(tmp_path, opt, capsys):
    opt["num_gpu"] = 1
    code, err = _run_cli(tmp_path, opt, capsys)
    assert code == 1 and "option 'num_gpu': is 1" in err and "num_gpu: 0" in err and "Traceback" not in err


def test_train_py_leaves_real_bugs_their_traceback(tmp_path, opt, capsys, monkeypatch):
    """A TypeError / KeyError from our own code is a bug: not printed as a user error."""
    from ehat.train import trainer

    def bug(self):
        raise KeyError("a bug")

    monkeypatch.setattr(trainer.Trainer, "run", bug)
    with pytest.raises(KeyError):
        _run_cli(tmp_path, opt, capsys)
