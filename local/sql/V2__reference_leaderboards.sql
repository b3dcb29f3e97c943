-- Reference leaderboards exactly as upstream seeds them (Sage-Bionetworks/sage-monorepo,
-- apps/bixarena/api/src/main/resources/db/migration/common/): `overall` from
-- V2__insert_reference_data.sql, one per biomedical category from V9__add_categorization.sql.
-- A category leaderboard's slug is the category that battle_categorization_category stores;
-- `overall` has no category filter. Every id is fixed: 1111... for overall, 2222... for
-- cancer-biology, 3333... for neuroscience, and 4444...00NN for the other categories, numbered in
-- slug order (NN in hex).
INSERT INTO api.leaderboard (id, slug, name, description, created_at, updated_at) VALUES
  ('11111111-1111-1111-1111-111111111111', 'overall', 'Overall', 'Overall performance ranking of all LLMs', '2025-08-01 10:00:00+00', '2025-08-16 14:30:00+00');

INSERT INTO api.leaderboard (id, slug, name, description) VALUES
  ('44444444-4444-4444-4444-444444440001', 'biochemistry',                'Biochemistry',                'Performance on biochemistry questions'),
  ('44444444-4444-4444-4444-444444440002', 'bioengineering',              'Bioengineering',              'Performance on bioengineering questions'),
  ('44444444-4444-4444-4444-444444440003', 'bioinformatics',              'Bioinformatics',              'Performance on bioinformatics questions'),
  ('22222222-2222-2222-2222-222222222222', 'cancer-biology',              'Cancer Biology',              'Performance on cancer biology questions'),
  ('44444444-4444-4444-4444-444444440004', 'cell-biology',                'Cell Biology',                'Performance on cell biology questions'),
  ('44444444-4444-4444-4444-444444440005', 'clinical-trials',             'Clinical Trials',             'Performance on clinical trials questions'),
  ('44444444-4444-4444-4444-444444440006', 'developmental-biology',       'Developmental Biology',       'Performance on developmental biology questions'),
  ('44444444-4444-4444-4444-444444440007', 'epidemiology',                'Epidemiology',                'Performance on epidemiology questions'),
  ('44444444-4444-4444-4444-444444440008', 'evolutionary-biology',        'Evolutionary Biology',        'Performance on evolutionary biology questions'),
  ('44444444-4444-4444-4444-444444440009', 'genetics',                    'Genetics',                    'Performance on genetics questions'),
  ('44444444-4444-4444-4444-44444444000a', 'genomics',                    'Genomics',                    'Performance on genomics questions'),
  ('44444444-4444-4444-4444-44444444000b', 'immunology',                  'Immunology',                  'Performance on immunology questions'),
  ('44444444-4444-4444-4444-44444444000c', 'microbiology',                'Microbiology',                'Performance on microbiology questions'),
  ('44444444-4444-4444-4444-44444444000d', 'molecular-biology',           'Molecular Biology',           'Performance on molecular biology questions'),
  ('33333333-3333-3333-3333-333333333333', 'neuroscience',                'Neuroscience',                'Performance on neuroscience questions'),
  ('44444444-4444-4444-4444-44444444000e', 'pathology',                   'Pathology',                   'Performance on pathology questions'),
  ('44444444-4444-4444-4444-44444444000f', 'pharmacology-and-toxicology', 'Pharmacology and Toxicology', 'Performance on pharmacology and toxicology questions'),
  ('44444444-4444-4444-4444-444444440010', 'physiology',                  'Physiology',                  'Performance on physiology questions'),
  ('44444444-4444-4444-4444-444444440011', 'synthetic-biology',           'Synthetic Biology',           'Performance on synthetic biology questions'),
  ('44444444-4444-4444-4444-444444440012', 'systems-biology',             'Systems Biology',             'Performance on systems biology questions');
