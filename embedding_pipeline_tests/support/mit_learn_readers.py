"""mit-learn's reader calls, copied from mitodl/mit-learn at 2f304af with the line each comes from, made
synchronous (its views use AsyncQdrantClient with the same arguments). Only the Django parts are left out:
settings become arguments, database lookups become lookups in mit-learn's own documents.

The contract tests (`test_mit_learn_readers.py`) replay them against the collections this project writes.
"""

from qdrant_client import QdrantClient, models

# vector_search/constants.py
QDRANT_CONTENT_FILE_PARAM_MAP = {
    "key": "key", "course_number": "course_number", "platform": "platform.code", "offered_by": "offered_by.code",
    "file_extension": "file_extension", "content_feature_type": "content_feature_type",
    "run_readable_id": "run_readable_id", "resource_readable_id": "resource_readable_id", "run_title": "run_title",
    "edx_module_id": "edx_module_id", "content_type": "content_type", "description": "description",
    "title": "title", "url": "url", "file_type": "file_type", "summary": "summary", "flashcards": "flashcards",
    "checksum": "checksum",
}  # fmt: skip
QDRANT_RESOURCE_PARAM_MAP = {
    "readable_id": "readable_id", "resource_type": "resource_type", "certification": "certification",
    "certification_type": "certification_type.code", "professional": "professional", "free": "free",
    "course_feature": "course_feature", "topic": "topics[].name", "ocw_topic": "ocw_topics",
    "level": "runs[].level[].code", "department": "departments[].department_id", "platform": "platform.code",
    "offered_by": "offered_by.code", "delivery": "delivery[].code", "title": "title", "url": "url",
    "resource_type_group": "resource_type_group", "resource_category": "resource_category",
    "published": "published", "next_start_date": "next_start_date", "views": "views", "created_on": "created_on",
}  # fmt: skip
QDRANT_TOPICS_PARAM_MAP = {"name": "name"}
# constants.py: VECTOR_SEARCH_SCORE_BOOST, RESOURCES_PAYLOAD_EXCLUDE
SCORE_BOOST = [{"boost": 0.15, "params": {"resource_type_group": ["program"]}}]
RESOURCES_PAYLOAD_EXCLUDE = ["_id", "resource_relations", "is_learning_material", "resource_age_date",
                             "featured_rank", "is_incomplete_or_stale", "video.transcript"]  # fmt: skip


def qdrant_query_conditions(params: dict, param_map: dict) -> models.Filter | None:
    """vector_search/utils.py l.1528 qdrant_query_conditions (COLLECTION_PARAM_MAP lookup made an argument)."""
    if not params or not param_map:
        return None
    must, must_not = [], []
    for param, value in params.items():
        if value is None:
            continue
        base_param, _, lookup = param.partition("__")
        if base_param not in param_map:
            continue
        qdrant_key = param_map[base_param]
        if lookup == "isnull":
            condition = models.IsNullCondition(is_null=models.PayloadField(key=qdrant_key))
            (must if value is True else must_not).append(condition)
        elif lookup == "isempty":
            key = qdrant_key.replace("[].name", "")
            condition = models.IsEmptyCondition(is_empty=models.PayloadField(key=key))
            (must if value is True else must_not).append(condition)
        elif isinstance(value, list):
            match_condition = (
                models.MatchValue(value=value[0])
                if len(value) == 1 and isinstance(value[0], bool)
                else models.MatchAny(any=value)
            )
            must.append(models.FieldCondition(key=qdrant_key, match=match_condition))
        else:
            must.append(models.FieldCondition(key=qdrant_key, match=models.MatchValue(value=value)))
    if must or must_not:
        return models.Filter(must=must, must_not=must_not)
    return None


def format_order_by(order_by_parameter: str) -> models.OrderBy:
    """vector_search/views.py l.130 _format_order_by."""
    sort = models.Direction.ASC
    if order_by_parameter.startswith("-") and len(order_by_parameter) > 1:
        order_by_parameter = order_by_parameter.lstrip("-")
        sort = models.Direction.DESC
    return models.OrderBy(key=order_by_parameter, direction=sort)


def custom_score_formula() -> list[models.MultExpression]:
    """vector_search/utils.py l.1713 custom_score_formula, for the resources collection."""
    expressions = []
    for score_param in SCORE_BOOST:
        conditions = qdrant_query_conditions(score_param["params"], QDRANT_RESOURCE_PARAM_MAP)
        expressions.append(
            models.MultExpression(
                mult=[
                    score_param["boost"],
                    conditions,
                    models.GaussDecayExpression(
                        gauss_decay=models.DecayParamsExpression(x="$score", target=0.4, scale=0.2, midpoint=0.2)
                    ),
                ]
            )
        )
    return expressions


def search_params(
    collection: str,
    search_filter,
    limit: int,
    prefetch_limit: int,
    order_by: str | None,
    dense_query: list[float],
    dense_name: str,
    sparse_query: models.SparseVector | None,
    sparse_name: str,
    *,
    resources: bool,
) -> dict:
    """vector_search/views.py l.137 _build_search_params (no score cutoff), the query vectors made by the caller
    with mit-learn's encoders (l.177 `encoder_sparse.embed(query_string)`, `encoder_dense.embed_query`)."""
    params = {
        "collection_name": collection,
        "query_filter": search_filter,
        "with_vectors": False,
        "with_payload": models.PayloadSelectorExclude(exclude=RESOURCES_PAYLOAD_EXCLUDE) if resources else True,
        "search_params": models.SearchParams(
            quantization=models.QuantizationSearchParams(ignore=False, rescore=True, oversampling=1),
            hnsw_ef=64,
            indexed_only=True,
            exact=False,
        ),
        "limit": limit,
    }
    if sparse_query is not None:
        formula = models.FormulaQuery(
            formula=models.SumExpression(sum=["$score", *(custom_score_formula() if resources else [])])
        )
        prefetch = [
            models.Prefetch(
                query=formula, limit=prefetch_limit,
                prefetch=[models.Prefetch(filter=search_filter, query=query, using=using, limit=prefetch_limit)],
            )
            for query, using in ((sparse_query, sparse_name), (dense_query, dense_name))
        ]  # fmt: skip
        if order_by:
            params["prefetch"] = models.Prefetch(
                prefetch=prefetch, query=models.FusionQuery(fusion=models.Fusion.RRF), limit=prefetch_limit
            )
            params["query"] = models.OrderByQuery(order_by=format_order_by(order_by))
        else:
            params["prefetch"] = prefetch
            params["query"] = models.FusionQuery(fusion=models.Fusion.RRF)
    elif order_by:
        params["prefetch"] = models.Prefetch(query=dense_query, using=dense_name, limit=prefetch_limit)
        params["query"] = models.OrderByQuery(order_by=format_order_by(order_by))
    else:
        params["using"] = dense_name
        params["query"] = dense_query
    return params


def group_search(client: QdrantClient, params: dict, group_by: str, group_size: int = 1) -> list[dict]:
    """vector_search/views.py l.245 _execute_group_search: hits grouped, payloads merged."""
    params = {key: value for key, value in params.items() if key != "search_params"}
    result = client.query_points_groups(**params, group_by=group_by, group_size=group_size)
    rows = []
    for group in result.groups:
        payloads = [hit.payload for hit in group.hits]
        merged = merge_dicts(payloads)
        merged["chunks"] = [payload.get("chunk_content") for payload in payloads]
        rows.append({"id": merged[group_by], "payload": merged})
    return rows


def merge_dicts(dicts: list[dict]) -> dict:
    """vector_search/utils.py l.1366 _merge_dicts."""
    if not dicts:
        return {}
    common_keys = set.intersection(*(set(d.keys()) for d in dicts))
    return {key: dicts[0][key] for key in common_keys if all(d[key] == dicts[0][key] for d in dicts)}


def facet(client: QdrantClient, collection: str, agg_key: str, params: dict, param_map: dict) -> list[dict]:
    """vector_search/utils.py l.1457 async_qdrant_aggregations._get_facet."""
    filtered = {k: v for k, v in params.items() if k.partition("__")[0] != agg_key}
    result = client.facet(
        collection_name=collection, key=param_map[agg_key],
        facet_filter=qdrant_query_conditions(filtered, param_map), limit=100,
    )  # fmt: skip
    hits = [
        {"key": str(hit.value).lower() if isinstance(hit.value, bool) else str(hit.value), "doc_count": hit.count}
        for hit in result.hits
    ]
    return sorted(hits, key=lambda x: x["doc_count"], reverse=True)


def extract_values(obj: dict, qdrant_field: str) -> list:
    """vector_search/views.py l.408 _extract_values: the values at a path like `topics[].name`."""
    values = [obj]
    for part in qdrant_field.split("."):
        key = part.removesuffix("[]")
        next_values = []
        for value in values:
            if not isinstance(value, dict):
                continue
            item = value.get(key)
            if item is None:
                continue
            next_values.extend(item) if isinstance(item, list) else next_values.append(item)
        values = next_values
    return values


def resource_payload_hits(points) -> list[dict]:
    """vector_search/utils.py l.1220 _resource_payload_hits: payloads served as the API's resources."""
    hits, seen = [], set()
    for hit in points:
        payload = hit.payload or {}
        readable_id = payload.get("readable_id")
        if not readable_id:
            continue
        key = f"{(payload.get('platform') or {}).get('code', '')}:{readable_id}"
        if key not in seen:
            seen.add(key)
            hits.append(payload)
    return hits


def similar_results(client: QdrantClient, collection: str, query, dense_name: str, limit: int, query_filter=None):
    """learning_resources_search/api.py l.1149 _qdrant_similar_results (score_threshold=0)."""
    return [
        hit.payload
        for hit in client.query_points(
            collection_name=collection, query=query, limit=limit, using=dense_name, score_threshold=0,
            query_filter=query_filter,
        ).points
    ]  # fmt: skip
