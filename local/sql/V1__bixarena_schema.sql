-- BixArena's `api` tables that the pipeline reads and writes, as upstream's Flyway migrations
-- define them. Used only for tests and local runs: production's schema belongs to BixArena.
CREATE SCHEMA IF NOT EXISTS api;

CREATE TABLE api.leaderboard (
  id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  slug        VARCHAR(100) NOT NULL UNIQUE,
  name        VARCHAR(200) NOT NULL,
  description TEXT,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api.model (
  id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  slug           VARCHAR(200) NOT NULL UNIQUE,
  name           VARCHAR(300) NOT NULL,
  license        VARCHAR(20)  NOT NULL CHECK (license IN ('open-source', 'proprietary')),
  active         BOOLEAN      NOT NULL DEFAULT false,
  alias          VARCHAR(200),
  external_link  VARCHAR(300) NOT NULL,
  organization   VARCHAR(200),
  description    VARCHAR(300),
  api_model_name VARCHAR(300) NOT NULL,
  api_base       VARCHAR(300) NOT NULL,
  created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
  updated_at     TIMESTAMPTZ  NOT NULL DEFAULT now()
);

CREATE TABLE api.battle (
  id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  title      VARCHAR(255),
  user_id    UUID NOT NULL,
  model1_id  UUID NOT NULL REFERENCES api.model (id) ON DELETE CASCADE,
  model2_id  UUID NOT NULL REFERENCES api.model (id) ON DELETE CASCADE,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  ended_at   TIMESTAMPTZ
);

CREATE TABLE api.battle_evaluation (
  id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  battle_id  UUID NOT NULL UNIQUE REFERENCES api.battle (id) ON DELETE CASCADE,
  outcome    VARCHAR(20) NOT NULL CHECK (outcome IN ('model1', 'model2', 'tie')),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

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
CREATE UNIQUE INDEX battle_validation_automated_uq
  ON api.battle_validation (battle_id, method) WHERE validated_by IS NULL;
CREATE UNIQUE INDEX battle_validation_manual_uq
  ON api.battle_validation (battle_id, method, validated_by) WHERE validated_by IS NOT NULL;

CREATE TABLE api.battle_categorization (
  id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  battle_id      UUID NOT NULL REFERENCES api.battle (id) ON DELETE CASCADE,
  method         VARCHAR(100) NOT NULL,
  categorized_by UUID,
  reason         VARCHAR(1000),
  status         VARCHAR(20) NOT NULL,
  created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api.battle_categorization_category (
  categorization_id UUID NOT NULL REFERENCES api.battle_categorization (id) ON DELETE CASCADE,
  category          VARCHAR(100) NOT NULL,
  PRIMARY KEY (categorization_id, category)
);

ALTER TABLE api.battle
  ADD COLUMN effective_validation_id UUID
    REFERENCES api.battle_validation (id) ON DELETE SET NULL,
  ADD COLUMN effective_categorization_id UUID
    REFERENCES api.battle_categorization (id) ON DELETE SET NULL;

CREATE TABLE api.leaderboard_snapshot (
  id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  leaderboard_id      UUID NOT NULL REFERENCES api.leaderboard (id) ON DELETE CASCADE,
  snapshot_identifier VARCHAR(200) NOT NULL,
  description         TEXT,
  visibility          VARCHAR(20) NOT NULL DEFAULT 'private' CHECK (visibility IN ('public', 'private')),
  created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (leaderboard_id, snapshot_identifier)
);

CREATE TABLE api.leaderboard_entry (
  id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  leaderboard_id UUID NOT NULL REFERENCES api.leaderboard (id) ON DELETE CASCADE,
  model_id       UUID NOT NULL REFERENCES api.model (id) ON DELETE CASCADE,
  snapshot_id    UUID NOT NULL REFERENCES api.leaderboard_snapshot (id) ON DELETE CASCADE,
  bt_score       DECIMAL(10, 6) NOT NULL,
  vote_count     INTEGER NOT NULL DEFAULT 0,
  rank           INTEGER NOT NULL,
  bootstrap_q025 DECIMAL(10, 6) NOT NULL,
  bootstrap_q975 DECIMAL(10, 6) NOT NULL,
  created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (leaderboard_id, model_id, snapshot_id)
);
CREATE INDEX idx_leaderboard_entry_leaderboard_id ON api.leaderboard_entry (leaderboard_id);
CREATE INDEX idx_leaderboard_entry_model_id ON api.leaderboard_entry (model_id);
CREATE INDEX idx_leaderboard_entry_snapshot_id ON api.leaderboard_entry (snapshot_id);
CREATE INDEX idx_leaderboard_entry_rank ON api.leaderboard_entry (rank);
CREATE INDEX idx_leaderboard_entry_bt_score ON api.leaderboard_entry (bt_score DESC);

-- Foreign keys the pipeline joins on; upstream indexes them the same way.
CREATE INDEX idx_battle_model1_id ON api.battle (model1_id);
CREATE INDEX idx_battle_model2_id ON api.battle (model2_id);
CREATE INDEX idx_battle_validation_battle_id ON api.battle_validation (battle_id);
CREATE INDEX idx_battle_categorization_battle_id ON api.battle_categorization (battle_id);
CREATE INDEX idx_leaderboard_snapshot_leaderboard_id ON api.leaderboard_snapshot (leaderboard_id);
