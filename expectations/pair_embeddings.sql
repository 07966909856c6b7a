-- The columns the pair_embeddings suite validates (read from LanceDB): ids, dimension, norm.
select
    pair_id,
    task_category,
    len(vector) as dimension,
    sqrt(list_sum(list_transform(vector, lambda x: x * x))) as norm,
    len(list_filter(vector, lambda x: isnan(x))) as nan_components
from pair_embeddings
