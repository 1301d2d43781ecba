"""What ``lirlab COMMAND --help`` prints, as data: written by ``python -m lirlab.cli_help``, never by hand
(see :mod:`lirlab.cli_help`)."""

# fmt: off
CATALOG = {'index': {'prog': 'lirlab index',
           'usage': None,
           'description': 'encode a corpus and write an index folder',
           'epilog': None,
           'formatter': 'HelpFormatter',
           'groups': [{'title': 'positional arguments', 'description': None, 'actions': []},
                      {'title': 'options',
                       'description': None,
                       'actions': [{'option_strings': ['--dataset'],
                                    'dest': 'dataset',
                                    'required': True,
                                    'help': "'demo', a BEIR folder, or an ir_datasets id"},
                                   {'option_strings': ['--split'],
                                    'dest': 'split',
                                    'help': 'qrels split of a BEIR folder (default: test)'},
                                   {'option_strings': ['--out'],
                                    'dest': 'out',
                                    'required': True,
                                    'help': 'index folder to write (an existing index is replaced '
                                            'atomically)'},
                                   {'option_strings': ['--overwrite'],
                                    'dest': 'overwrite',
                                    'nargs': 0,
                                    'help': 'replace --out even if it is a folder lirlab did not '
                                            'write (its files are moved aside, never deleted)',
                                    'usage_part': '--overwrite'},
                                   {'option_strings': ['--kind'],
                                    'dest': 'kind',
                                    'choices': ['flat', 'plaid'],
                                    'help': 'exhaustive (flat) or compressed PLAID (default: '
                                            'flat)'},
                                   {'option_strings': ['--batch-size'],
                                    'dest': 'batch_size',
                                    'help': 'documents per forward pass (default: 32)'},
                                   {'option_strings': ['--model'],
                                    'dest': 'model',
                                    'help': "hub id, model folder, or 'minilm' for the offline "
                                            'weights (default: '
                                            'answerdotai/answerai-colbert-small-v1)'},
                                   {'option_strings': ['--device'],
                                    'dest': 'device',
                                    'help': 'cpu, cuda, cuda:1 ... (default: cuda when available)'},
                                   {'option_strings': ['--no-augmentation'],
                                    'dest': 'no_augmentation',
                                    'nargs': 0,
                                    'help': 'do not pad queries with [MASK] (for encoders never '
                                            'trained with query augmentation)',
                                    'usage_part': '--no-augmentation'}]},
                      {'title': 'encoder settings',
                       'description': None,
                       'actions': [{'option_strings': ['--query-maxlen'],
                                    'dest': 'query_maxlen',
                                    'metavar': 'QUERY_MAXLEN',
                                    'help': 'Query length in tokens, markers included (0: no '
                                            "[MASK] padding, cut at the model's limit). (default: "
                                            'from the model or k)'},
                                   {'option_strings': ['--doc-maxlen'],
                                    'dest': 'doc_maxlen',
                                    'metavar': 'DOC_MAXLEN',
                                    'help': 'Document length in tokens, markers included; longer '
                                            'documents are cut (and counted). (default: from the '
                                            'model or k)'},
                                   {'option_strings': ['--attend-to-mask-tokens',
                                                       '--no-attend-to-mask-tokens'],
                                    'dest': 'attend_to_mask_tokens',
                                    'nargs': 0,
                                    'help': "Whether the encoder's attention sees the [MASK] "
                                            'padding.',
                                    'usage_part': '--attend-to-mask-tokens | '
                                                  '--no-attend-to-mask-tokens'}]},
                      {'title': 'flat build knobs',
                       'description': None,
                       'actions': [{'option_strings': ['--pool-factor'],
                                    'dest': 'pool_factor',
                                    'metavar': 'POOL_FACTOR',
                                    'help': 'Token pooling at build time: each document keeps '
                                            'ceil(tokens / pool_factor) vectors, the re-normalized '
                                            'means of Ward clusters of its token vectors (1 = '
                                            'off); markers stay unpooled. (default: 1)'}]},
                      {'title': 'plaid build knobs',
                       'description': None,
                       'actions': [{'option_strings': ['--nbits'],
                                    'dest': 'nbits',
                                    'metavar': 'NBITS',
                                    'choices': ['1', '2', '4'],
                                    'help': 'Bits per dimension of each residual. (default: 2)'},
                                   {'option_strings': ['--n-centroids'],
                                    'dest': 'n_centroids',
                                    'metavar': 'N_CENTROIDS',
                                    'help': 'Number of k-means centroids (default '
                                            "2^floor(log2(16·sqrt(tokens))), at most the sample's "
                                            'vectors). (default: from the model or k)'},
                                   {'option_strings': ['--kmeans-iterations'],
                                    'dest': 'kmeans_iterations',
                                    'metavar': 'KMEANS_ITERATIONS',
                                    'help': 'Spherical k-means rounds. (default: 4)'},
                                   {'option_strings': ['--kmeans-sample'],
                                    'dest': 'kmeans_sample',
                                    'metavar': 'KMEANS_SAMPLE',
                                    'help': 'Documents encoded first to train k-means and the '
                                            'codec (default min(n, 16·sqrt(120·n), 32768); thinned '
                                            'to hold at most 2,097,152 token vectors). (default: '
                                            'from the model or k)'},
                                   {'option_strings': ['--kmeans-points-per-centroid'],
                                    'dest': 'kmeans_points_per_centroid',
                                    'metavar': 'KMEANS_POINTS_PER_CENTROID',
                                    'help': 'Most k-means training vectors per centroid: when the '
                                            'sample holds more, a seeded subset of them trains '
                                            'k-means, whose cost is proportional to their number '
                                            '(default: all, as colbert-ai does; the codec and '
                                            'compression still see every vector). (default: from '
                                            'the model or k)'},
                                   {'option_strings': ['--seed'],
                                    'dest': 'seed',
                                    'metavar': 'SEED',
                                    'help': 'Seeds the k-means sample, held-out split and '
                                            'initialization. (default: 0)'},
                                   {'option_strings': ['--centroid-dtype'],
                                    'dest': 'centroid_dtype',
                                    'metavar': 'CENTROID_DTYPE',
                                    'choices': ['float32', 'float16'],
                                    'help': 'Precision the centroids are kept and saved in; '
                                            'float16 halves their bytes (about 2.6 of ~43 B per '
                                            "vector at SciFact's size) and rounds them before the "
                                            'residuals are taken, so results move slightly. '
                                            '(default: float32)'}]}]},
 'search': {'prog': 'lirlab search',
            'usage': None,
            'description': "search an index with text queries or a dataset's queries",
            'epilog': None,
            'formatter': 'HelpFormatter',
            'groups': [{'title': 'positional arguments', 'description': None, 'actions': []},
                       {'title': 'options',
                        'description': None,
                        'actions': [{'option_strings': ['--index'],
                                     'dest': 'index',
                                     'required': True,
                                     'help': "index folder written by 'lirlab index', colbert-ai "
                                             'or fast-plaid (those two need --model; documents are '
                                             'named by their passage ids)'},
                                    {'option_strings': ['--query'],
                                     'dest': 'query',
                                     'help': 'query text (repeat for several)'},
                                    {'option_strings': ['--dataset'],
                                     'dest': 'dataset',
                                     'help': 'search all queries of this dataset instead'},
                                    {'option_strings': ['--split'],
                                     'dest': 'split',
                                     'help': 'queries split of a BEIR folder (default: test)'},
                                    {'option_strings': ['--k'],
                                     'dest': 'k',
                                     'help': 'results per query (default: 10)'},
                                    {'option_strings': ['--out'],
                                     'dest': 'out',
                                     'help': "write the run to this file ('-': standard output) "
                                             'instead of printing a table'},
                                    {'option_strings': ['--format'],
                                     'dest': 'format',
                                     'choices': ['trec', 'tsv'],
                                     'help': "run file format: TREC 'qid Q0 docno rank score tag' "
                                             '(trec_eval, ir_measures) or TSV with a header '
                                             '(default: trec)'},
                                    {'option_strings': ['--model'],
                                     'dest': 'model',
                                     'help': 'encoder for the queries (default: the one recorded '
                                             'in the index)'},
                                    {'option_strings': ['--device'],
                                     'dest': 'device',
                                     'help': 'cpu, cuda, cuda:1 ... (default: cuda when '
                                             'available)'},
                                    {'option_strings': ['--no-augmentation'],
                                     'dest': 'no_augmentation',
                                     'nargs': 0,
                                     'help': 'do not pad queries with [MASK]',
                                     'usage_part': '--no-augmentation'}]},
                       {'title': 'flat search knobs (unset ones follow k)',
                        'description': None,
                        'actions': []},
                       {'title': 'plaid search knobs (unset ones follow k)',
                        'description': None,
                        'actions': [{'option_strings': ['--n-probe'],
                                     'dest': 'n_probe',
                                     'metavar': 'N_PROBE',
                                     'help': 'Centroids probed per query token in candidate '
                                             'generation (default from k: 1, 2 or 4). (default: '
                                             'from the model or k)'},
                                    {'option_strings': ['--centroid-score-threshold'],
                                     'dest': 'centroid_score_threshold',
                                     'metavar': 'CENTROID_SCORE_THRESHOLD',
                                     'help': 'Document tokens whose centroid scores below this '
                                             'against every query token are skipped in stage 2 '
                                             '(default from k: 0.5, 0.45 or 0.4). (default: from '
                                             'the model or k)'},
                                    {'option_strings': ['--ndocs'],
                                     'dest': 'ndocs',
                                     'metavar': 'NDOCS',
                                     'help': 'Candidates kept after stage 2; a quarter of them (at '
                                             'least k) are decompressed (default from k: 256, 1024 '
                                             'or max(4k, 4096)). (default: from the model or '
                                             'k)'}]}]},
 'evaluate': {'prog': 'lirlab evaluate',
              'usage': None,
              'description': "score a run against a dataset's qrels with ir_measures",
              'epilog': None,
              'formatter': 'HelpFormatter',
              'groups': [{'title': 'positional arguments', 'description': None, 'actions': []},
                         {'title': 'options',
                          'description': None,
                          'actions': [{'option_strings': ['--run'],
                                       'dest': 'run',
                                       'required': True,
                                       'help': "TREC run file (or TSV) from 'lirlab search --out'"},
                                      {'option_strings': ['--dataset'],
                                       'dest': 'dataset',
                                       'required': True,
                                       'help': "'demo', a BEIR folder, or an ir_datasets id (its "
                                               'qrels)'},
                                      {'option_strings': ['--split'],
                                       'dest': 'split',
                                       'help': 'qrels split of a BEIR folder (default: test)'},
                                      {'option_strings': ['--measures'],
                                       'dest': 'measures',
                                       'nargs': '+',
                                       'help': "ir_measures names (default: ['nDCG@10', 'RR@10', "
                                               "'R@100'])"},
                                      {'option_strings': ['--per-query'],
                                       'dest': 'per_query',
                                       'nargs': 0,
                                       'help': 'one row per query and measure',
                                       'usage_part': '--per-query'},
                                      {'option_strings': ['--tsv'],
                                       'dest': 'tsv',
                                       'nargs': 0,
                                       'help': 'print tab-separated values instead of a table',
                                       'usage_part': '--tsv'}]}]},
 'demo': {'prog': 'lirlab demo',
          'usage': None,
          'description': 'run the quickstart end to end on the demo corpus and write its figures',
          'epilog': None,
          'formatter': 'HelpFormatter',
          'groups': [{'title': 'positional arguments', 'description': None, 'actions': []},
                     {'title': 'options',
                      'description': None,
                      'actions': [{'option_strings': ['--out'],
                                   'dest': 'out',
                                   'help': 'folder for figures and the run (default: lirlab-demo)'},
                                  {'option_strings': ['--model'],
                                   'dest': 'model',
                                   'help': 'default: the default model, or MiniLM when offline'},
                                  {'option_strings': ['--device'],
                                   'dest': 'device',
                                   'help': 'cpu, cuda, cuda:1 ... (default: cuda when '
                                           'available)'}]}]},
 'train': {'prog': 'lirlab train',
           'usage': None,
           'description': 'Fine-tune a late-interaction (ColBERT) model on training pairs, on CPU '
                          'or CUDA.\n'
                          '\n'
                          'Each step takes --batch-size training queries, one judged-relevant '
                          'document for each (its positive)\n'
                          'and --negatives documents it should rank lower: hard negatives mined '
                          "with lirlab's own index from the\n"
                          'starting model (the top --mine-depth documents of the query that are '
                          'not judged relevant), or random\n'
                          'documents with --mine none. Every query is scored by MaxSim against its '
                          'own documents and, with\n'
                          'in-batch negatives (the default), against every other document of the '
                          'batch; the loss is the\n'
                          'cross-entropy of the positive. With --teacher (scores from a '
                          'cross-encoder), the loss is instead the\n'
                          "KL divergence between the teacher's and the model's score distributions "
                          "over each query's documents.\n"
                          '\n'
                          'Queries are trained as the model will see them: --query-maxlen, [MASK] '
                          'padding on or off\n'
                          '(--mask-padding / --no-mask-padding) and --attend-to-mask-tokens. A '
                          'plain Hugging Face encoder gets\n'
                          'the markers [unused0]/[unused1] (or new [Q]/[D] tokens when its '
                          'vocabulary lacks them) and a --dim\n'
                          'projection.\n'
                          '\n'
                          'The out folder receives checkpoint-<step>/ folders, each holding the '
                          'model in the colbert-ai layout\n'
                          '(stanford/) and the PyLate layout (pylate/) -- load either with '
                          'ColBERT.load(folder) or the tool itself\n'
                          '-- plus the optimizer state to resume from. An out folder that already '
                          'holds a run is refused unless\n'
                          '--overwrite (start over) or --resume (continue from its last checkpoint '
                          'with its saved settings).\n',
           'epilog': 'examples:\n'
                     "  # 200 steps on NFCorpus's training pairs, hard negatives mined with a flat "
                     'index, [MASK] padding to 32\n'
                     '  lirlab train --model benchmarks/models/minilm-colbert --dataset '
                     '../shared/data/nfcorpus \\\n'
                     '      --out runs/nfcorpus --steps 200 --batch-size 16 --lr 5e-5 '
                     '--query-maxlen 32 --mask-padding\n'
                     '\n'
                     '  # the same within a 20-minute budget, without [MASK] padding, evaluating '
                     'on the dev split every 50 steps\n'
                     '  lirlab train --model benchmarks/models/minilm-colbert --dataset '
                     '../shared/data/nfcorpus --out runs/nopad \\\n'
                     '      --steps 260 --max-minutes 20 --no-mask-padding --eval-dataset '
                     '../shared/data/nfcorpus --eval-split dev \\\n'
                     '      --eval-every 50\n'
                     '\n'
                     "  # continue an interrupted run; distil from a cross-encoder's scores (qid, "
                     'docno, score per line)\n'
                     '  lirlab train --dataset ../shared/data/nfcorpus --out runs/nfcorpus '
                     '--resume\n'
                     '  lirlab train --dataset ../shared/data/nfcorpus --out runs/kd --teacher '
                     'ce-scores.tsv --negatives 7\n',
           'formatter': 'RawDescriptionHelpFormatter',
           'groups': [{'title': 'positional arguments', 'description': None, 'actions': []},
                      {'title': 'options',
                       'description': None,
                       'actions': [{'option_strings': ['--model'],
                                    'dest': 'model',
                                    'help': 'starting checkpoint: a folder (Stanford, PyLate or '
                                            "plain HF), a hub id, or 'minilm' (default: "
                                            'benchmarks/models/minilm-colbert, the MiniLM-ColBERT '
                                            'benchmark model, built on first use)'},
                                   {'option_strings': ['--dataset'],
                                    'dest': 'dataset',
                                    'required': True,
                                    'help': 'training pairs: a BEIR folder (its qrels/<split>.tsv) '
                                            'or an ir_datasets id'},
                                   {'option_strings': ['--split'],
                                    'dest': 'split',
                                    'help': 'qrels split of a BEIR folder (default: train)'},
                                   {'option_strings': ['--out'],
                                    'dest': 'out',
                                    'required': True,
                                    'help': 'run folder for checkpoints and the log'},
                                   {'option_strings': ['--device'],
                                    'dest': 'device',
                                    'help': 'cpu, cuda, cuda:1 ... (default: cuda when available)'},
                                   {'option_strings': ['--mine'],
                                    'dest': 'mine',
                                    'choices': ['flat', 'plaid', 'none'],
                                    'help': 'index used to mine hard negatives from the starting '
                                            "model; 'none' draws random documents (default: flat)"},
                                   {'option_strings': ['--mine-depth'],
                                    'dest': 'mine_depth',
                                    'help': 'mined negatives kept per query, from the top of its '
                                            'ranking (default: 50)'},
                                   {'option_strings': ['--mine-padding', '--no-mine-padding'],
                                    'dest': 'mine_padding',
                                    'nargs': 0,
                                    'help': 'mine with [MASK]-padded queries (default: off, which '
                                            'ranks best for a model not yet trained with padding)',
                                    'usage_part': '--mine-padding | --no-mine-padding'},
                                   {'option_strings': ['--negatives-from'],
                                    'dest': 'negatives_from',
                                    'help': "reuse a mined set (a run's negatives/ folder or a "
                                            'negatives.tsv) instead of mining'},
                                   {'option_strings': ['--teacher'],
                                    'dest': 'teacher',
                                    'help': 'JSONL or TSV of qid, docno, score from a teacher: '
                                            'distillation instead of contrastive'},
                                   {'option_strings': ['--eval-dataset'],
                                    'dest': 'eval_dataset',
                                    'help': 'dev set for --eval-every (BEIR folder or ir_datasets '
                                            'id)'},
                                   {'option_strings': ['--eval-split'],
                                    'dest': 'eval_split',
                                    'help': 'qrels split of --eval-dataset (default: dev)'},
                                   {'option_strings': ['--overwrite'],
                                    'dest': 'overwrite',
                                    'nargs': 0,
                                    'help': 'start over in an out folder holding a run',
                                    'usage_part': '--overwrite'},
                                   {'option_strings': ['--resume'],
                                    'dest': 'resume',
                                    'nargs': 0,
                                    'help': 'continue the run in --out from its last checkpoint',
                                    'usage_part': '--resume'},
                                   {'option_strings': ['--no-progress'],
                                    'dest': 'no_progress',
                                    'nargs': 0,
                                    'help': 'no progress bar',
                                    'usage_part': '--no-progress'},
                                   {'option_strings': ['--steps'],
                                    'dest': 'steps',
                                    'metavar': 'STEPS',
                                    'help': 'optimizer steps; the learning rate decays linearly to '
                                            '0 over them (default: 1000)'},
                                   {'option_strings': ['--max-minutes'],
                                    'dest': 'max_minutes',
                                    'metavar': 'MAX_MINUTES',
                                    'help': 'wall-clock budget of training steps (evaluation and '
                                            'checkpoint writing not counted); stops early, the '
                                            'schedule is still set by steps'},
                                   {'option_strings': ['--batch-size'],
                                    'dest': 'batch_size',
                                    'metavar': 'BATCH_SIZE',
                                    'help': 'training queries per step, each with one positive '
                                            '(default: 16)'},
                                   {'option_strings': ['--negatives'],
                                    'dest': 'negatives',
                                    'metavar': 'NEGATIVES',
                                    'help': 'negatives per query: mined hard negatives (random '
                                            'documents when none were mined) (default: 1)'},
                                   {'option_strings': ['--in-batch', '--no-in-batch'],
                                    'dest': 'in_batch',
                                    'nargs': 0,
                                    'help': "also score every query against the other queries' "
                                            'documents (documents judged relevant to it are left '
                                            'out of its softmax) (default: True)',
                                    'usage_part': '--in-batch | --no-in-batch'},
                                   {'option_strings': ['--lr'],
                                    'dest': 'lr',
                                    'metavar': 'LR',
                                    'help': 'peak learning rate of AdamW (default: 3e-05)'},
                                   {'option_strings': ['--warmup'],
                                    'dest': 'warmup',
                                    'metavar': 'WARMUP',
                                    'help': 'fraction of steps with linear warm-up from 0 '
                                            '(default: 0.1)'},
                                   {'option_strings': ['--weight-decay'],
                                    'dest': 'weight_decay',
                                    'metavar': 'WEIGHT_DECAY',
                                    'help': 'AdamW weight decay (default: 0.0)'},
                                   {'option_strings': ['--max-grad-norm'],
                                    'dest': 'max_grad_norm',
                                    'metavar': 'MAX_GRAD_NORM',
                                    'help': 'gradient clipping norm (0 = no clipping) (default: '
                                            '1.0)'},
                                   {'option_strings': ['--temperature'],
                                    'dest': 'temperature',
                                    'metavar': 'TEMPERATURE',
                                    'help': 'scores are divided by it before the softmax (default: '
                                            '1.0)'},
                                   {'option_strings': ['--accumulation'],
                                    'dest': 'accumulation',
                                    'metavar': 'ACCUMULATION',
                                    'help': 'batches whose gradients are summed per optimizer step '
                                            '(default: 1)'},
                                   {'option_strings': ['--seed'],
                                    'dest': 'seed',
                                    'metavar': 'SEED',
                                    'help': 'seeds batches, dropout and any new projection '
                                            '(default: 12345)'},
                                   {'option_strings': ['--query-maxlen'],
                                    'dest': 'query_maxlen',
                                    'metavar': 'QUERY_MAXLEN',
                                    'help': 'query length in tokens, markers included (default: '
                                            "the checkpoint's); with query_augmentation, the "
                                            '[MASK] padding target'},
                                   {'option_strings': ['--mask-padding'],
                                    'dest': 'query_augmentation',
                                    'nargs': 0,
                                    'help': 'pad training queries with [MASK] to --query-maxlen '
                                            "(default: the checkpoint's)",
                                    'usage_part': '--mask-padding'},
                                   {'option_strings': ['--no-mask-padding'],
                                    'dest': 'query_augmentation',
                                    'nargs': 0,
                                    'help': 'do not pad training queries',
                                    'usage_part': '--no-mask-padding'},
                                   {'option_strings': ['--attend-to-mask-tokens',
                                                       '--no-attend-to-mask-tokens'],
                                    'dest': 'attend_to_mask_tokens',
                                    'nargs': 0,
                                    'help': 'let attention see the [MASK] padding (default: the '
                                            "checkpoint's)",
                                    'usage_part': '--attend-to-mask-tokens | '
                                                  '--no-attend-to-mask-tokens'},
                                   {'option_strings': ['--doc-maxlen'],
                                    'dest': 'doc_maxlen',
                                    'metavar': 'DOC_MAXLEN',
                                    'help': 'document length in tokens while training (default: '
                                            "the checkpoint's; saved checkpoints keep it)"},
                                   {'option_strings': ['--dim'],
                                    'dest': 'dim',
                                    'metavar': 'DIM',
                                    'help': 'vector size of the projection added to an encoder '
                                            'that has none (default: 128)'},
                                   {'option_strings': ['--save-every'],
                                    'dest': 'save_every',
                                    'metavar': 'SAVE_EVERY',
                                    'help': 'steps between checkpoints (default: only at the end)'},
                                   {'option_strings': ['--save-every-minutes'],
                                    'dest': 'save_every_minutes',
                                    'metavar': 'SAVE_EVERY_MINUTES',
                                    'help': 'training minutes between extra checkpoints'},
                                   {'option_strings': ['--keep-checkpoints'],
                                    'dest': 'keep_checkpoints',
                                    'metavar': 'KEEP_CHECKPOINTS',
                                    'help': 'checkpoints kept in the out folder, newest first (0 = '
                                            'all) (default: 2)'},
                                   {'option_strings': ['--eval-every'],
                                    'dest': 'eval_every',
                                    'metavar': 'EVAL_EVERY',
                                    'help': 'steps between evaluations on the dev set (default: '
                                            'none)'},
                                   {'option_strings': ['--bf16', '--no-bf16'],
                                    'dest': 'bf16',
                                    'nargs': 0,
                                    'help': 'bf16 autocast on CUDA (ignored on CPU) (default: '
                                            'True)',
                                    'usage_part': '--bf16 | --no-bf16'}]}]},
 'bench': {'prog': 'lirlab bench',
           'usage': None,
           'description': 'benchmarks saved as JSON/CSV with the machine described',
           'epilog': "'lirlab bench train' and 'lirlab bench methods' take their own options: see "
                     "'lirlab bench train --help' and 'lirlab bench methods --help'.",
           'formatter': 'HelpFormatter',
           'groups': [{'title': 'positional arguments',
                       'description': None,
                       'actions': [{'option_strings': [],
                                    'dest': 'which',
                                    'choices': ['core',
                                                'plaid',
                                                'masks',
                                                'compression',
                                                'reliability',
                                                'memory',
                                                'methods',
                                                'train'],
                                    'required': True,
                                    'help': 'core: encoding and exhaustive MaxSim; plaid: the '
                                            'compressed index; masks: nDCG@10 as [MASK] query '
                                            'augmentation varies; compression: nbits against '
                                            'reconstruction and ranking; reliability: kill -9 and '
                                            'racing-reader trials of index saves; memory: PLAID '
                                            'build peak RSS on 1x/4x/16x the demo; methods: PLAID, '
                                            'WARP, MUVERA, token pooling and exhaustive MaxSim in '
                                            "one sweep and chart (its own options, see 'lirlab "
                                            "bench methods --help'); train: the training recipe "
                                            '(two 20-minute NFCorpus runs, with and without [MASK] '
                                            'padding, scored before and after; its own options, '
                                            "see 'lirlab bench train --help')"}]},
                      {'title': 'options',
                       'description': None,
                       'actions': [{'option_strings': ['--build-tool'],
                                    'dest': 'build_tool',
                                    'help': 'script that builds benchmarks/models/minilm-colbert '
                                            'when it is missing (default: '
                                            '<checkout>/../shared/tools/build_minilm_colbert.py)'},
                                   {'option_strings': ['--dataset'],
                                    'dest': 'dataset',
                                    'help': '(default: ../shared/data/scifact)'},
                                   {'option_strings': ['--split'],
                                    'dest': 'split',
                                    'help': 'qrels split of a BEIR folder (default: test)'},
                                   {'option_strings': ['--queries'],
                                    'dest': 'queries',
                                    'help': 'queries timed one at a time (default: 100)'},
                                   {'option_strings': ['--out'],
                                    'dest': 'out',
                                    'help': 'results folder (default: benchmarks/results)'},
                                   {'option_strings': ['--cache'],
                                    'dest': 'cache',
                                    'help': 'where encoded corpora are kept between benchmarks '
                                            'that do not time encoding (default: '
                                            'benchmarks/cache)'},
                                   {'option_strings': ['--model'],
                                    'dest': 'model',
                                    'help': "hub id, model folder, or 'minilm' for the offline "
                                            'weights (default: benchmarks/models/minilm-colbert)'},
                                   {'option_strings': ['--device'],
                                    'dest': 'device',
                                    'help': 'cpu, cuda, cuda:1 ... (default: cuda when available)'},
                                   {'option_strings': ['--no-augmentation'],
                                    'dest': 'no_augmentation',
                                    'nargs': 0,
                                    'help': 'do not pad queries with [MASK] (for encoders never '
                                            'trained with query augmentation)',
                                    'usage_part': '--no-augmentation'}]},
                      {'title': 'encoder settings',
                       'description': None,
                       'actions': [{'option_strings': ['--query-maxlen'],
                                    'dest': 'query_maxlen',
                                    'metavar': 'QUERY_MAXLEN',
                                    'help': 'Query length in tokens, markers included (0: no '
                                            "[MASK] padding, cut at the model's limit). (default: "
                                            'from the model or k)'},
                                   {'option_strings': ['--doc-maxlen'],
                                    'dest': 'doc_maxlen',
                                    'metavar': 'DOC_MAXLEN',
                                    'help': 'Document length in tokens, markers included; longer '
                                            'documents are cut (and counted). (default: from the '
                                            'model or k)'},
                                   {'option_strings': ['--attend-to-mask-tokens',
                                                       '--no-attend-to-mask-tokens'],
                                    'dest': 'attend_to_mask_tokens',
                                    'nargs': 0,
                                    'help': "Whether the encoder's attention sees the [MASK] "
                                            'padding.',
                                    'usage_part': '--attend-to-mask-tokens | '
                                                  '--no-attend-to-mask-tokens'}]}]},
 'bench train': {'prog': 'lirlab bench train',
                 'usage': None,
                 'description': 'lirlab bench train: the issue-15 recipe end to end, on this '
                                'machine, within a wall-clock budget.\n'
                                '\n'
                                "1. Start from the MiniLM-ColBERT checkpoint (the peer figures' "
                                'model). Encode NFCorpus once with it: the\n'
                                '   same flat index scores the untrained model on NFCorpus test '
                                'and mines hard negatives for the\n'
                                '   NFCorpus train queries (top mine_depth, judged positives '
                                'excluded, mined without [MASK]\n'
                                '   padding, where the untrained model ranks best). The mined set '
                                'is saved with the run.\n'
                                '2. Train two models from it for minutes of training steps each, '
                                'one after the other: queries padded\n'
                                '   with [MASK] to 32 (mask32), and not padded (nomask). '
                                'Checkpoints every\n'
                                '   snapshot_minutes give the training-time curve.\n'
                                '3. Score every model (untrained, each snapshot, both finals) by '
                                'exhaustive MaxSim, each with and\n'
                                '   without [MASK] padding to 32, on NFCorpus test and (the start '
                                'and final models) SciFact test,\n'
                                "   always with the checkpoint's own document length (180).\n"
                                '4. Run the [MASK] analysis on the start and both final models on '
                                'NFCorpus test: the query_maxlen\n'
                                '   curve with and without attention to [MASK], and the '
                                'term-weighting summary over the first\n'
                                '   weighting_queries queries (where each [MASK] points, and how '
                                'its weight follows IDF).\n'
                                '\n'
                                'Results go to <out>/train.json (+ train.<table>.csv), rewritten '
                                'after every phase, so a\n'
                                'partial run still reports what it measured; checkpoints and '
                                'encoded corpora go to <cache>/train\n'
                                '(ignored by git). A phase already done (its checkpoint or cached '
                                'index present) is not redone.\n',
                 'epilog': 'examples:\n'
                           '  # the whole recipe (about 40 minutes of training, then the '
                           'evaluation), figures to benchmarks/results/\n'
                           '  lirlab bench train\n'
                           '  # mine and train now, evaluate later (each phase resumes from what '
                           'the cache holds)\n'
                           '  lirlab bench train --phases mine train --lr 1e-4 --mine-doc-maxlen '
                           '64\n'
                           '  lirlab bench train --phases evaluate\n'
                           '  # a quick look: 2 minutes per run, one recipe\n'
                           '  lirlab bench train --minutes 2 --snapshot-minutes 1 --recipes nomask '
                           '--cache /tmp/bench-train\n',
                 'formatter': 'RawDescriptionHelpFormatter',
                 'groups': [{'title': 'positional arguments', 'description': None, 'actions': []},
                            {'title': 'options',
                             'description': None,
                             'actions': [{'option_strings': ['--model'],
                                          'dest': 'model',
                                          'help': 'start checkpoint (default: '
                                                  'benchmarks/models/minilm-colbert, built on '
                                                  'first use)'},
                                         {'option_strings': ['--train-dataset'],
                                          'dest': 'train_dataset',
                                          'help': 'BEIR folder with qrels/train.tsv (default: '
                                                  '../shared/data/nfcorpus)'},
                                         {'option_strings': ['--test-datasets'],
                                          'dest': 'test_datasets',
                                          'nargs': '+',
                                          'help': 'BEIR folders scored on their test split; the '
                                                  'one named like the training set gets the '
                                                  'training-time curve and the [MASK] analysis '
                                                  "(default: ['../shared/data/nfcorpus', "
                                                  "'../shared/data/scifact'])"},
                                         {'option_strings': ['--minutes'],
                                          'dest': 'minutes',
                                          'help': 'training minutes per run (default: 20.0)'},
                                         {'option_strings': ['--snapshot-minutes'],
                                          'dest': 'snapshot_minutes',
                                          'help': 'checkpoint interval for the curve (default: '
                                                  '10.0)'},
                                         {'option_strings': ['--steps'],
                                          'dest': 'steps',
                                          'help': 'schedule length in steps (default: 260)'},
                                         {'option_strings': ['--batch-size'],
                                          'dest': 'batch_size',
                                          'help': 'training queries per step (default: 16)'},
                                         {'option_strings': ['--negatives'],
                                          'dest': 'negatives',
                                          'help': 'mined hard negatives per query, besides the '
                                                  'in-batch ones (default: 1)'},
                                         {'option_strings': ['--lr'],
                                          'dest': 'lr',
                                          'help': 'peak learning rate (default: 5e-05)'},
                                         {'option_strings': ['--warmup'],
                                          'dest': 'warmup',
                                          'help': 'fraction of --steps with linear warm-up, then '
                                                  'linear decay (default: 0.05)'},
                                         {'option_strings': ['--train-doc-maxlen'],
                                          'dest': 'train_doc_maxlen',
                                          'help': 'document tokens while training; evaluation uses '
                                                  "the checkpoint's (default: 128)"},
                                         {'option_strings': ['--mine-depth'],
                                          'dest': 'mine_depth',
                                          'help': 'hard negatives kept per training query, from '
                                                  'the top of its ranking (default: 50)'},
                                         {'option_strings': ['--mine-doc-maxlen'],
                                          'dest': 'mine_doc_maxlen',
                                          'help': 'document length of the mining index; shorter '
                                                  'mines faster (default: 180)'},
                                         {'option_strings': ['--phases'],
                                          'dest': 'phases',
                                          'nargs': '+',
                                          'choices': ['mine', 'train', 'evaluate'],
                                          'help': 'what to run; a phase whose results are cached '
                                                  'is skipped (default: all)'},
                                         {'option_strings': ['--weighting-queries'],
                                          'dest': 'weighting_queries',
                                          'help': 'queries of the [MASK] term-weighting summary '
                                                  '(default: 100)'},
                                         {'option_strings': ['--recipes'],
                                          'dest': 'recipes',
                                          'nargs': '+',
                                          'choices': ['mask32', 'nomask'],
                                          'help': 'mask32: queries padded with [MASK] to 32 while '
                                                  'training; nomask: not padded (default: both)'},
                                         {'option_strings': ['--out'],
                                          'dest': 'out',
                                          'help': 'results folder (default: benchmarks/results)'},
                                         {'option_strings': ['--cache'],
                                          'dest': 'cache',
                                          'help': 'checkpoints and encoded corpora (default: '
                                                  'benchmarks/cache)'},
                                         {'option_strings': ['--device'],
                                          'dest': 'device',
                                          'help': 'cpu or cuda (default: cpu)'},
                                         {'option_strings': ['--seed'],
                                          'dest': 'seed',
                                          'help': 'seeds batches and dropout (default: 12345)'}]}]},
 'bench methods': {'prog': 'lirlab bench methods',
                   'usage': None,
                   'description': 'lirlab bench methods: token pooling, MUVERA and WARP beside '
                                  'PLAID and exhaustive MaxSim, one sweep.\n'
                                  '\n'
                                  'On one dataset (SciFact test by default) with one encoder and '
                                  'the same encoded vectors for every\n'
                                  'method, :func:`run_methods_benchmark` measures, through '
                                  ':func:`lirlab.analysis.sweeps.sweep`:\n'
                                  '\n'
                                  '* **exhaustive** MaxSim (flat) and **PLAID** (nbits 2) over its '
                                  'n_probe range;\n'
                                  '* **WARP** over the same PLAID index (no second build) across '
                                  'nprobe and t_prime;\n'
                                  '* **MUVERA** (FDEs, re-ranked by exact MaxSim over the stored '
                                  'vectors) across candidates;\n'
                                  '* **Qdrant** (embedded, optional: qdrant_grid / --qdrant) built '
                                  'from the same vectors, across\n'
                                  '  prefetch (pooled candidates re-ranked by MaxSim; 0 is '
                                  "Qdrant's full MaxSim scan);\n"
                                  '* **token pooling** at pool factors 2, 3 and 4 with the flat '
                                  'index and with PLAID (pool, then compress):\n'
                                  '  vectors removed and nDCG@10, the table of Clavié et al. '
                                  '(2024).\n'
                                  '\n'
                                  'Latency is one query at a time, query encoding excluded, '
                                  'warm-up excluded, at 1 and 2 torch threads;\n'
                                  'quality (nDCG@10, and R@100 from a second search at depth 100) '
                                  'over every judged query; the recall of\n'
                                  "exact MaxSim's top-10. Also the Spearman correlation between "
                                  'FDE inner products and exact MaxSim over\n'
                                  'every document, per query. Results: methods-<dataset>.json with '
                                  'the machine described, the sweep\n'
                                  'as CSV, and the Pareto chart as a small PNG.\n',
                   'epilog': None,
                   'formatter': 'RawDescriptionHelpFormatter',
                   'groups': [{'title': 'positional arguments', 'description': None, 'actions': []},
                              {'title': 'options',
                               'description': None,
                               'actions': [{'option_strings': ['--datasets'],
                                            'dest': 'datasets',
                                            'nargs': '+',
                                            'help': "BEIR folders or 'demo' (default: SciFact and "
                                                    "NFCorpus in the workplace's ../shared/data)"},
                                           {'option_strings': ['--split'],
                                            'dest': 'split',
                                            'help': 'qrels split (default: test)'},
                                           {'option_strings': ['--model'],
                                            'dest': 'model',
                                            'help': 'checkpoint (default: '
                                                    'benchmarks/models/minilm-colbert, built on '
                                                    'first use)'},
                                           {'option_strings': ['--threads'],
                                            'dest': 'threads',
                                            'nargs': '+',
                                            'help': 'torch threads to time at'},
                                           {'option_strings': ['--queries'],
                                            'dest': 'queries',
                                            'help': 'queries timed per setting (default: 100)'},
                                           {'option_strings': ['--max-queries'],
                                            'dest': 'max_queries',
                                            'help': 'judged queries measured (default: all), the '
                                                    'same for every method'},
                                           {'option_strings': ['--pool-factors'],
                                            'dest': 'pool_factors',
                                            'nargs': '+',
                                            'help': 'token pooling factors (1 = none)'},
                                           {'option_strings': ['--n-centroids'],
                                            'dest': 'n_centroids',
                                            'help': "PLAID centroids (default: PLAID's, from the "
                                                    'corpus size)'},
                                           {'option_strings': ['--kmeans-iterations'],
                                            'dest': 'kmeans_iterations',
                                            'help': "PLAID k-means rounds (default: PLAID's)"},
                                           {'option_strings': ['--no-pooled-plaid'],
                                            'dest': 'no_pooled_plaid',
                                            'nargs': 0,
                                            'help': 'pool the flat index only',
                                            'usage_part': '--no-pooled-plaid'},
                                           {'option_strings': ['--qdrant'],
                                            'dest': 'qdrant',
                                            'nargs': '*',
                                            'metavar': 'PREFETCH',
                                            'help': 'add embedded Qdrant rows at these prefetch '
                                                    'depths (0 = full MaxSim scan; no value: [100, '
                                                    '400]); needs lirlab[qdrant]'},
                                           {'option_strings': ['--cache'],
                                            'dest': 'cache',
                                            'help': 'encoded corpora (default: benchmarks/cache)'},
                                           {'option_strings': ['--out'],
                                            'dest': 'out',
                                            'help': 'results folder (default: '
                                                    'benchmarks/results)'}]}]}}
