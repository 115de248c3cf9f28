"""taskflow.packaging: what goes into each zip, and that the same source always gives the same CodeSha256."""

from __future__ import annotations

import ast
import io
import os
import shutil
import sys
import zipfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from taskflow.packaging import LAMBDAS_DIR, available_functions, build_zip, code_sha256, zip_entries

FUNCTIONS = ["create_task", "create_task_direct", "process_task"]


def test_every_workshop_function_is_packageable() -> None:
    assert available_functions() == FUNCTIONS


@pytest.mark.parametrize("name", FUNCTIONS)
def test_zip_holds_the_handler_and_the_shared_module_only(name: str) -> None:
    with zipfile.ZipFile(io.BytesIO(build_zip(name))) as archive:
        assert archive.namelist() == ["lambda_function.py", "taskflow_shared.py"]
        assert archive.read("lambda_function.py") == (LAMBDAS_DIR / name / "lambda_function.py").read_bytes()
        assert archive.read("taskflow_shared.py") == (LAMBDAS_DIR / "shared" / "taskflow_shared.py").read_bytes()
        for info in archive.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644


@pytest.mark.parametrize("name", FUNCTIONS)
def test_handlers_import_only_the_standard_library_boto3_and_the_shared_module(name: str) -> None:
    """A Lambda zip has no site-packages: anything else would fail with ImportModuleError on AWS."""
    allowed = set(sys.stdlib_module_names) | {"boto3", "botocore", "taskflow_shared"}
    for source in (LAMBDAS_DIR / name / "lambda_function.py", LAMBDAS_DIR / "shared" / "taskflow_shared.py"):
        tree = ast.parse(source.read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert imported <= allowed, f"{source} imports {imported - allowed}"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_the_same_source_gives_the_same_bytes(name: str, tmp_path: Path) -> None:
    first = build_zip(name)
    copy = tmp_path / "lambdas"
    shutil.copytree(LAMBDAS_DIR, copy)
    for path in copy.rglob("*.py"):
        os.utime(path, (0, 1_900_000_000))  # different mtimes must not change the zip
    assert build_zip(name, copy) == first
    assert code_sha256(build_zip(name)) == code_sha256(first)


def test_line_endings_do_not_change_the_zip(tmp_path: Path) -> None:
    copy = tmp_path / "lambdas"
    shutil.copytree(LAMBDAS_DIR, copy)
    handler = copy / "process_task" / "lambda_function.py"
    handler.write_bytes(handler.read_bytes().replace(b"\n", b"\r\n"))  # as a Windows checkout might
    assert build_zip("process_task", copy) == build_zip("process_task")


def test_a_source_change_changes_the_hash(tmp_path: Path) -> None:
    copy = tmp_path / "lambdas"
    shutil.copytree(LAMBDAS_DIR, copy)
    shared = copy / "shared" / "taskflow_shared.py"
    shared.write_text(shared.read_text() + "\n# changed\n")
    assert code_sha256(build_zip("create_task", copy)) != code_sha256(build_zip("create_task"))


def test_extra_modules_in_a_function_folder_are_included_but_may_not_shadow_the_shared_one(tmp_path: Path) -> None:
    copy = tmp_path / "lambdas"
    shutil.copytree(LAMBDAS_DIR, copy)
    (copy / "create_task" / "helpers.py").write_text("X = 1\n")
    assert list(zip_entries("create_task", copy)) == ["helpers.py", "lambda_function.py", "taskflow_shared.py"]
    (copy / "create_task" / "taskflow_shared.py").write_text("X = 1\n")
    with pytest.raises(ValueError, match="shadow"):
        zip_entries("create_task", copy)


def test_an_unknown_function_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="create_task, create_task_direct, process_task"):
        build_zip("create-task")


def test_code_sha256_is_what_lambda_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    zipped = build_zip("create_task")
    with mock_aws():
        iam = boto3.client("iam")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam = boto3.client("lambda")
        config = lam.create_function(
            FunctionName="f",
            Runtime="python3.13",
            Role=role,
            Handler="lambda_function.lambda_handler",
            Code={"ZipFile": zipped},
        )
    assert config["CodeSha256"] == code_sha256(zipped)
    assert config["CodeSize"] == len(zipped)
