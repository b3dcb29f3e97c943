-- Reference leaderboards: `overall` and one per biomedical category (slug = category).
INSERT INTO api.leaderboard (id, slug, name, description) VALUES
  ('11111111-1111-1111-1111-111111111111', 'overall', 'Overall', 'All biomedical evaluations'),
  (gen_random_uuid(), 'biochemistry', 'Biochemistry', 'Biochemistry evaluations'),
  (gen_random_uuid(), 'bioengineering', 'Bioengineering', 'Bioengineering evaluations'),
  (gen_random_uuid(), 'bioinformatics', 'Bioinformatics', 'Bioinformatics evaluations'),
  ('22222222-2222-2222-2222-222222222222', 'cancer-biology', 'Cancer Biology', 'Cancer Biology evaluations'),
  (gen_random_uuid(), 'cell-biology', 'Cell Biology', 'Cell Biology evaluations'),
  (gen_random_uuid(), 'clinical-trials', 'Clinical Trials', 'Clinical Trials evaluations'),
  (gen_random_uuid(), 'developmental-biology', 'Developmental Biology', 'Developmental Biology evaluations'),
  (gen_random_uuid(), 'epidemiology', 'Epidemiology', 'Epidemiology evaluations'),
  (gen_random_uuid(), 'evolutionary-biology', 'Evolutionary Biology', 'Evolutionary Biology evaluations'),
  (gen_random_uuid(), 'genetics', 'Genetics', 'Genetics evaluations'),
  (gen_random_uuid(), 'genomics', 'Genomics', 'Genomics evaluations'),
  (gen_random_uuid(), 'immunology', 'Immunology', 'Immunology evaluations'),
  (gen_random_uuid(), 'microbiology', 'Microbiology', 'Microbiology evaluations'),
  (gen_random_uuid(), 'molecular-biology', 'Molecular Biology', 'Molecular Biology evaluations'),
  ('33333333-3333-3333-3333-333333333333', 'neuroscience', 'Neuroscience', 'Neuroscience evaluations'),
  (gen_random_uuid(), 'pathology', 'Pathology', 'Pathology evaluations'),
  (gen_random_uuid(), 'pharmacology-and-toxicology', 'Pharmacology and Toxicology', 'Pharmacology and Toxicology evaluations'),
  (gen_random_uuid(), 'physiology', 'Physiology', 'Physiology evaluations'),
  (gen_random_uuid(), 'synthetic-biology', 'Synthetic Biology', 'Synthetic Biology evaluations'),
  (gen_random_uuid(), 'systems-biology', 'Systems Biology', 'Systems Biology evaluations')
ON CONFLICT (slug) DO NOTHING;
