"""A local Spark Connect server for the tests: PyPI's pyspark carries Spark, Java runs it.

Started once per test session (``spark-submit`` of Spark's own ``SparkConnectServer`` class, a
small local configuration: two cores, 1 GB of driver memory, two shuffle partitions, no UI),
waited for on its port within a bound, and stopped at the end. ``MATGATE_TEST_SPARK`` names a
server that is already running (``sc://host:port``) instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
START_SECONDS = 300  # a cold JVM on a busy 2-core machine has taken 45 s


class SparkUnavailable(Exception):
    """Spark Connect cannot run here (no Java, no pyspark, or the server did not come up)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


class SparkServer:
    """One Spark Connect server process on a free loopback port."""

    def __init__(self, home: Path) -> None:
        java = shutil.which("java")
        if java is None:
            raise SparkUnavailable(
                "no java on PATH (Debian: apt-get install openjdk-17-jre-headless)"
            )
        try:
            from pyspark.find_spark_home import _find_spark_home
        except ImportError as exc:
            raise SparkUnavailable(f"pyspark is not installed ({exc})") from exc
        spark_home = Path(_find_spark_home())
        if not any((spark_home / "jars").glob("spark-connect_*.jar")):
            raise SparkUnavailable(f"no Spark Connect jar under {spark_home / 'jars'}")
        self.port = _free_port()
        self.url = f"sc://127.0.0.1:{self.port}"
        self.warehouse = home / "warehouse"
        confs = {
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self.port),
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.sql.warehouse.dir": str(self.warehouse),
            "spark.local.dir": str(home / "local"),
            "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={home}",
        }
        cmd = [str(spark_home / "bin" / "spark-submit"), "--class", SERVER_CLASS]
        cmd += ["--master", "local[2]", "--driver-memory", "1g"]
        for key, value in confs.items():
            cmd += ["--conf", f"{key}={value}"]
        env = {**os.environ, "SPARK_HOME": str(spark_home), "SPARK_LOCAL_IP": "127.0.0.1"}
        env["JAVA_HOME"] = env.get("JAVA_HOME") or str(Path(java).resolve().parent.parent)
        self.log_path = home / "spark-connect.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=home
        )
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise

    def _wait(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise SparkUnavailable(f"Spark Connect exited with {self.proc.returncode}: {tail}")
            if _listening(self.port):
                return
            time.sleep(0.5)
        raise SparkUnavailable(f"Spark Connect did not listen on {self.port} in {START_SECONDS} s")

    def stop(self) -> None:
        """Stop the server (the JVM ``spark-submit`` became) and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
