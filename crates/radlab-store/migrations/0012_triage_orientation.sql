-- Triage verdicts from the network: the orientation it saw the image in ('' from the rules
-- alone; '0' upright, '90' ... 'mirrored 270') and the blob hash of an upright rendering
-- stored by `radlab triage --fix-orientation` ('' when none: the original is never changed).
ALTER TABLE triage_verdicts ADD COLUMN orientation TEXT NOT NULL DEFAULT '';
ALTER TABLE triage_verdicts ADD COLUMN upright_blob TEXT NOT NULL DEFAULT '';
