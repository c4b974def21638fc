-- Each stored fix keeps its horizontal accuracy (metres), so trip reports can
-- leave out the fixes too vague to measure a trip by.
ALTER TABLE track_points ADD COLUMN acc DOUBLE PRECISION;
