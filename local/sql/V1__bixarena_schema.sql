-- BixArena's `api` tables that the pipeline reads and writes, in the final state that upstream's
-- Flyway migrations leave them (Sage-Bionetworks/sage-monorepo,
-- apps/bixarena/api/src/main/resources/db/migration/common/):
--   V1  (create tables)                   leaderboard, model, leaderboard_snapshot, leaderboard_entry,
--                                         example_prompt, battle, message, battle_round, battle_evaluation
--   V4  (add_visibility_snapshot)         leaderboard_snapshot.visibility, .updated_at
--   V5, V10 (message content)             message.content VARCHAR(50000)
--   V6  (create_quest_table)              the index idx_battle_user_ended only
--   V7  (create_validation_tables)        battle_validation, battle.effective_validation_id
--   V9  (add_categorization)              example_prompt_categorization, battle_categorization(_category),
--                                         example_prompt.effective_categorization_id/created_by,
--                                         battle.effective_categorization_id
--   V11 (update_model_license)            model_license_check: 'open-source' | 'proprietary'
--   V12 (add_battle_example_prompt)       battle.example_prompt_id
-- Written as the end state, not as that history: each table lists its columns in upstream's
-- physical order, and constraints carry the names upstream's statements give them (PostgreSQL's
-- defaults unless upstream names them). The reference leaderboards are in V2.
--
-- Left out, because no pipeline code or FK of the tables above needs them: prompt_validation (V7),
-- model_error (V1), quest and quest_post (V6, V8), and the model and example-prompt seed rows
-- (V2, V3). The `api` schema itself comes from BixArena's database init script, not a migration.
--
-- Used only for tests and local runs: production's schema belongs to BixArena.
CREATE SCHEMA IF NOT EXISTS api;

CREATE TABLE api.leaderboard (
  id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  slug        VARCHAR(100) UNIQUE NOT NULL,
  name        VARCHAR(200) NOT NULL,
  description TEXT,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api.model (
  id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  slug           VARCHAR(200) UNIQUE NOT NULL,
  name           VARCHAR(300) NOT NULL,
  license        VARCHAR(20) NOT NULL,
  active         BOOLEAN NOT NULL DEFAULT FALSE,
  alias          VARCHAR(200),
  external_link  VARCHAR(300) NOT NULL,
  organization   VARCHAR(200),
  description    VARCHAR(300),
  api_model_name VARCHAR(300) NOT NULL,
  api_base       VARCHAR(300) NOT NULL,
  created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
  -- V11 drops and re-adds the CHECK under this name, so the name is part of upstream's contract.
  CONSTRAINT model_license_check CHECK (license IN ('open-source', 'proprietary'))
);
CREATE INDEX idx_api_model_license ON api.model (license);
CREATE INDEX idx_api_model_active ON api.model (active);

CREATE TABLE api.leaderboard_snapshot (
  id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  leaderboard_id      UUID NOT NULL REFERENCES api.leaderboard (id) ON DELETE CASCADE,
  snapshot_identifier VARCHAR(200) NOT NULL,
  description         TEXT,
  created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
  visibility          VARCHAR(20) NOT NULL DEFAULT 'private'
                        CHECK (visibility IN ('public', 'private')),
  updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (leaderboard_id, snapshot_identifier)
);
CREATE INDEX idx_api_leaderboard_snapshot_leaderboard_id ON api.leaderboard_snapshot (leaderboard_id);
CREATE INDEX idx_api_leaderboard_snapshot_created_at ON api.leaderboard_snapshot (created_at DESC);
CREATE INDEX idx_api_leaderboard_snapshot_visibility ON api.leaderboard_snapshot (visibility);

CREATE TABLE api.leaderboard_entry (
  id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  leaderboard_id UUID NOT NULL REFERENCES api.leaderboard (id) ON DELETE CASCADE,
  model_id       UUID NOT NULL REFERENCES api.model (id) ON DELETE CASCADE,
  snapshot_id    UUID NOT NULL REFERENCES api.leaderboard_snapshot (id) ON DELETE CASCADE,
  bt_score       DECIMAL(10, 6) NOT NULL,
  vote_count     INTEGER NOT NULL DEFAULT 0,
  rank           INTEGER NOT NULL,
  -- [UNVERIFIED] upstream's final V1 text was not readable. Its bootstrap columns are taken to be
  -- DECIMAL(10,6) NOT NULL between rank and created_at (upstream's inserts list them there and
  -- read them without a null check), and the older nullable secondary_score to be gone (no
  -- upstream code has written or read it since the bootstrap columns arrived).
  bootstrap_q025 DECIMAL(10, 6) NOT NULL,
  bootstrap_q975 DECIMAL(10, 6) NOT NULL,
  created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (leaderboard_id, model_id, snapshot_id)
);
CREATE INDEX idx_api_leaderboard_entry_leaderboard_id ON api.leaderboard_entry (leaderboard_id);
CREATE INDEX idx_api_leaderboard_entry_model_id ON api.leaderboard_entry (model_id);
CREATE INDEX idx_api_leaderboard_entry_snapshot_id ON api.leaderboard_entry (snapshot_id);
CREATE INDEX idx_api_leaderboard_entry_rank ON api.leaderboard_entry (rank);
CREATE INDEX idx_api_leaderboard_entry_bt_score ON api.leaderboard_entry (bt_score DESC);

CREATE TABLE api.example_prompt (
  id                          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  -- [UNVERIFIED] 160 in the three latest readable versions of upstream's V1; older ones had 1000.
  question                    VARCHAR(160) NOT NULL,
  source                      VARCHAR(100) NOT NULL,
  active                      BOOLEAN NOT NULL DEFAULT FALSE,
  created_at                  TIMESTAMPTZ NOT NULL DEFAULT now(),
  effective_categorization_id UUID,
  created_by                  UUID,
  CONSTRAINT chk_example_prompt_source CHECK (source IN ('pubmedqa', 'bixbench', 'bixarena'))
);
CREATE INDEX idx_api_example_prompt_source ON api.example_prompt (source);
CREATE INDEX idx_api_example_prompt_active ON api.example_prompt (active);
CREATE INDEX idx_example_prompt_effective_categorization
  ON api.example_prompt (effective_categorization_id);

CREATE TABLE api.example_prompt_categorization (
  id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  prompt_id      UUID NOT NULL REFERENCES api.example_prompt (id) ON DELETE CASCADE,
  method         VARCHAR(100) NOT NULL,
  categorized_by UUID,
  reason         VARCHAR(1000),
  status         VARCHAR(20) NOT NULL,
  category       VARCHAR(100),
  created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_epc_prompt_id ON api.example_prompt_categorization (prompt_id);
CREATE INDEX idx_epc_category ON api.example_prompt_categorization (category);
CREATE INDEX idx_epc_status ON api.example_prompt_categorization (status);

-- battle.user_id has no FK: users live in another service's schema.
CREATE TABLE api.battle (
  id                          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  title                       VARCHAR(255),
  user_id                     UUID NOT NULL,
  model1_id                   UUID NOT NULL REFERENCES api.model (id) ON DELETE CASCADE,
  model2_id                   UUID NOT NULL REFERENCES api.model (id) ON DELETE CASCADE,
  created_at                  TIMESTAMPTZ NOT NULL DEFAULT now(),
  ended_at                    TIMESTAMPTZ,
  effective_validation_id     UUID,
  effective_categorization_id UUID,
  example_prompt_id           UUID REFERENCES api.example_prompt (id) ON DELETE SET NULL
);
-- Upstream has no index on model1_id or model2_id.
CREATE INDEX idx_api_battle_user_id ON api.battle (user_id);
CREATE INDEX idx_api_battle_created_at ON api.battle (created_at DESC);
CREATE INDEX idx_battle_user_ended ON api.battle (user_id, ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX idx_battle_effective_validation ON api.battle (effective_validation_id);
CREATE INDEX idx_battle_effective_categorization ON api.battle (effective_categorization_id);
CREATE INDEX idx_api_battle_example_prompt_id
  ON api.battle (example_prompt_id) WHERE example_prompt_id IS NOT NULL;

-- A message belongs to a battle only through battle_round.
CREATE TABLE api.message (
  id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  role       VARCHAR(20) NOT NULL,
  content    VARCHAR(50000) NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT chk_message_role CHECK (role IN ('system', 'user', 'assistant'))
);
CREATE INDEX idx_api_message_role ON api.message (role);

-- No UNIQUE (battle_id, round_number) upstream; a model's answer is NULL when it failed.
CREATE TABLE api.battle_round (
  id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  battle_id         UUID NOT NULL REFERENCES api.battle (id) ON DELETE CASCADE,
  round_number      INTEGER NOT NULL DEFAULT 1,
  prompt_message_id UUID NOT NULL REFERENCES api.message (id) ON DELETE CASCADE,
  model1_message_id UUID REFERENCES api.message (id) ON DELETE SET NULL,
  model2_message_id UUID REFERENCES api.message (id) ON DELETE SET NULL,
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_api_battle_round_battle_id ON api.battle_round (battle_id);
CREATE INDEX idx_api_battle_round_round_number ON api.battle_round (round_number);
CREATE INDEX idx_api_battle_round_created_at ON api.battle_round (created_at DESC);

CREATE TABLE api.battle_evaluation (
  id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  battle_id  UUID NOT NULL REFERENCES api.battle (id) ON DELETE CASCADE,
  outcome    VARCHAR(20) NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT unique_battle_evaluation UNIQUE (battle_id),
  CONSTRAINT chk_battle_evaluation_outcome CHECK (outcome IN ('model1', 'model2', 'tie'))
);
CREATE INDEX idx_api_battle_evaluation_outcome ON api.battle_evaluation (outcome);
CREATE INDEX idx_api_battle_evaluation_created_at ON api.battle_evaluation (created_at DESC);

-- validated_by is NULL for automated validations and the reviewer's user id for human ones.
CREATE TABLE api.battle_validation (
  id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  battle_id     UUID NOT NULL REFERENCES api.battle (id) ON DELETE CASCADE,
  method        VARCHAR(100) NOT NULL,
  confidence    DECIMAL(4, 3) NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
  is_biomedical BOOLEAN NOT NULL,
  validated_by  UUID,
  reason        VARCHAR(1000),
  created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX idx_battle_validation_battle_method
  ON api.battle_validation (battle_id, method) WHERE validated_by IS NULL;
CREATE UNIQUE INDEX idx_battle_validation_battle_method_reviewer
  ON api.battle_validation (battle_id, method, validated_by) WHERE validated_by IS NOT NULL;
CREATE INDEX idx_battle_validation_battle_id ON api.battle_validation (battle_id);

-- status is 'matched' (one or more categories), 'abstained' (none) or 'failed'; upstream has no
-- CHECK on it.
CREATE TABLE api.battle_categorization (
  id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  battle_id      UUID NOT NULL REFERENCES api.battle (id) ON DELETE CASCADE,
  method         VARCHAR(100) NOT NULL,
  categorized_by UUID,
  reason         VARCHAR(1000),
  status         VARCHAR(20) NOT NULL,
  created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_bc_battle_id ON api.battle_categorization (battle_id);
CREATE INDEX idx_bc_status ON api.battle_categorization (status);

-- category is a leaderboard slug; there is no category table upstream.
CREATE TABLE api.battle_categorization_category (
  categorization_id UUID NOT NULL REFERENCES api.battle_categorization (id) ON DELETE CASCADE,
  category          VARCHAR(100) NOT NULL,
  PRIMARY KEY (categorization_id, category)
);

-- The "effective" pointers close cycles (battle <-> its validations and categorizations, prompt
-- <-> its categorizations), so their FKs follow the tables, under PostgreSQL's default names as
-- upstream's `ADD COLUMN ... REFERENCES` gives them.
ALTER TABLE api.example_prompt
  ADD CONSTRAINT example_prompt_effective_categorization_id_fkey
    FOREIGN KEY (effective_categorization_id)
    REFERENCES api.example_prompt_categorization (id) ON DELETE SET NULL;
ALTER TABLE api.battle
  ADD CONSTRAINT battle_effective_validation_id_fkey
    FOREIGN KEY (effective_validation_id) REFERENCES api.battle_validation (id) ON DELETE SET NULL,
  ADD CONSTRAINT battle_effective_categorization_id_fkey
    FOREIGN KEY (effective_categorization_id)
    REFERENCES api.battle_categorization (id) ON DELETE SET NULL;
