"""Loaders on small files in the real formats, and one clear error for every bad input."""

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.data import loaders as L
from helpers.engine.errors import InputError

FMT = Path(__file__).resolve().parent / "data" / "formats"


# ----------------------------------------------------------------------------- good files


def test_geo_count_matrix_gzip_ensembl_version():
    df = L.read_count_matrix(FMT / "GSE000001_raw_counts.txt.gz")
    assert df.shape == (33, 6)
    assert df.index[0] == "ENSG00000141510.18" and list(df.columns)[:2] == ["BM_pt01", "BM_pt02"]
    assert df.dtypes.unique().tolist() == [np.int64]


def test_r_style_csv_symbols_header_one_short():
    df = L.read_count_matrix(FMT / "counts_symbols_rstyle.csv")
    assert df.shape == (12, 6) and df.index[0] == "TP53" and df.columns[0] == "BM_pt01"
    gz = L.read_count_matrix(FMT / "GSE000001_raw_counts.txt.gz")
    assert df.iloc[0].tolist() == gz.iloc[0].tolist()


def test_featurecounts_style_drops_annotation_columns_and_comments():
    df = L.read_count_matrix(FMT / "counts_featurecounts.tsv")
    assert list(df.columns) == ["BM_pt01", "BM_pt02", "BM_pt03", "BM_pt04"]
    assert df.attrs["dropped_columns"] == ["Chr", "Start", "End", "Strand", "Length"]
    assert "CCDC155" in df.index


def test_same_matrix_plain_and_gzip(tmp_path):
    plain = tmp_path / "m.tsv"
    plain.write_bytes(gzip.decompress((FMT / "GSE000001_raw_counts.txt.gz").read_bytes()))
    a = L.read_count_matrix(plain)
    b = L.read_count_matrix(FMT / "GSE000001_raw_counts.txt.gz")
    pd.testing.assert_frame_equal(a, b)


def test_series_matrix_to_sample_sheet():
    sm = L.read_series_matrix(FMT / "GSE000001_series_matrix.txt.gz")
    assert list(sm.index) == [f"GSM46500{i:02d}" for i in range(1, 7)]
    assert sm.loc["GSM4650001", "title"] == "BM_pt01"
    assert sm.loc["GSM4650003", "best_response"] == "no response"
    assert sm.loc["GSM4650001", "tissue"] == "bone marrow"
    assert pd.isna(sm.loc["GSM4650005", "trial"]) and sm.loc["GSM4650006", "trial"] == "NCT02228096"


def test_htseq_dir_drops_and_reports_summary_rows():
    counts, summary = L.read_htseq_dir(FMT / "htseq")
    assert list(counts.columns) == ["SRR6000001", "SRR6000002", "SRR6000003"]
    assert counts.shape == (30, 3)
    assert not any(g.startswith("__") for g in counts.index)
    assert set(summary.index) == {
        "__no_feature",
        "__ambiguous",
        "__too_low_aQual",
        "__not_aligned",
        "__alignment_not_unique",
        "assigned_to_genes",
    }
    assert (summary.loc["assigned_to_genes"] == counts.sum()).all()


def test_htseq_dir_gzip_files(tmp_path):
    for f in (FMT / "htseq").glob("*.counts.txt"):
        (tmp_path / (f.name + ".gz")).write_bytes(gzip.compress(f.read_bytes()))
    counts, _ = L.read_htseq_dir(tmp_path)
    ref, _ = L.read_htseq_dir(FMT / "htseq")
    pd.testing.assert_frame_equal(counts, ref, check_like=False)


def test_logexpr_csv_floats_and_negatives():
    df = L.read_logexpr(FMT / "logexpr_array.csv")
    assert df.shape == (12, 6) and df.iloc[0, 0] == pytest.approx(-0.8123)
    with pytest.raises(InputError, match="negative count '-0.8123'"):  # not counts
        L.read_count_matrix(FMT / "logexpr_array.csv")


def test_sample_sheet():
    s = L.read_sample_sheet(FMT / "samples_titles.tsv", labels=("CR", "NR"))
    assert list(s.index) == [f"BM_pt{i:02d}" for i in range(1, 7)]
    assert pd.isna(s.loc["BM_pt02", "age"]) and s.loc["BM_pt01", "age"] == 34
    assert pd.isna(s.loc["BM_pt03", "sex"])


def test_sample_sheet_label_map_and_other_columns(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("patient,best_response\nP1,Complete remission\nP2,no response\n")
    s = L.read_sample_sheet(
        p,
        response_col="best_response",
        sample_col="patient",
        label_map={"complete remission": "CR", "no response": "NR"},
        labels=("CR", "NR"),
    )
    assert s.response.tolist() == ["CR", "NR"] and s.sample_id.tolist() == ["P1", "P2"]


def test_validate_cohort_orders_sheet_like_matrix():
    counts = L.read_count_matrix(FMT / "counts_symbols_rstyle.csv")
    sheet = L.read_sample_sheet(FMT / "samples_titles.tsv").iloc[::-1]
    c, s = L.validate_cohort(counts, sheet)
    assert list(s.index) == list(c.columns)


# ----------------------------------------------------------------------------- bad inputs


def _matrix_text():
    return gzip.decompress((FMT / "GSE000001_raw_counts.txt.gz").read_bytes()).decode()


def _write(tmp_path, text, name="m.tsv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _one_line(exc):
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found") as e:
        L.read_count_matrix(tmp_path / "nope.tsv")
    assert "nope.tsv" in _one_line(e)


def test_empty_file(tmp_path):
    for content in (b"", gzip.compress(b""), b"\n\n"):
        p = tmp_path / "e.tsv.gz"
        p.write_bytes(content)
        with pytest.raises(InputError, match="empty") as e:
            L.read_count_matrix(p)
        assert "e.tsv.gz" in _one_line(e)


def test_truncated_gzip(tmp_path):
    raw = (FMT / "GSE000001_raw_counts.txt.gz").read_bytes()
    p = tmp_path / "cut.txt.gz"
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="truncated or corrupt gzip") as e:
        L.read_count_matrix(p)
    assert "cut.txt.gz" in _one_line(e)


def test_wrong_delimiter_single_column(tmp_path):
    p = _write(tmp_path, _matrix_text().replace("\t", ";"))
    with pytest.raises(InputError, match="only one column") as e:
        L.read_count_matrix(p)
    assert "line 1" in _one_line(e)
    p = _write(tmp_path, _matrix_text().replace("\t", " "))
    with pytest.raises(InputError, match="only one column"):
        L.read_count_matrix(p)


def test_ragged_row(tmp_path):
    lines = _matrix_text().splitlines()
    lines[3] = lines[3].rsplit("\t", 1)[0]
    with pytest.raises(InputError, match="line 4: 6 fields, expected 7"):
        L.read_count_matrix(_write(tmp_path, "\n".join(lines)))


def _edit_cell(text, line, col, value):
    lines = text.splitlines()
    f = lines[line - 1].split("\t")
    f[col] = value
    lines[line - 1] = "\t".join(f)
    return "\n".join(lines) + "\n"


def test_non_numeric_count(tmp_path):
    p = _write(tmp_path, _edit_cell(_matrix_text(), 3, 2, "12a"))
    with pytest.raises(InputError) as e:
        L.read_count_matrix(p)
    msg = _one_line(e)
    assert "non-numeric value '12a'" in msg and "line 3" in msg and "'BM_pt02'" in msg and "m.tsv" in msg


def test_negative_count(tmp_path):
    p = _write(tmp_path, _edit_cell(_matrix_text(), 5, 1, "-4"))
    with pytest.raises(InputError, match=r"line 5 \(gene '.*'\), column 'BM_pt01': negative count '-4'") as e:
        L.read_count_matrix(p)
    assert "line 5" in _one_line(e) and "BM_pt01" in str(e.value)


def test_non_integer_count(tmp_path):
    p = _write(tmp_path, _edit_cell(_matrix_text(), 2, 6, "3.5"))
    with pytest.raises(InputError, match="non-integer count '3.5'") as e:
        L.read_count_matrix(p)
    assert "BM_pt06" in _one_line(e)
    # integer-valued floats are fine
    df = L.read_count_matrix(_write(tmp_path, _edit_cell(_matrix_text(), 2, 6, "3.0"), "ok.tsv"))
    assert df.iloc[0, 5] == 3


@pytest.mark.parametrize("cell", ["NA", "", "NaN"])
def test_nan(tmp_path, cell):
    p = _write(tmp_path, _edit_cell(_matrix_text(), 4, 3, cell))
    with pytest.raises(InputError, match="missing value") as e:
        L.read_count_matrix(p)
    assert "line 4" in _one_line(e) and "BM_pt03" in str(e.value)
    with pytest.raises(InputError, match="missing value"):
        L.read_logexpr(p)


def test_duplicated_gene_ids(tmp_path):
    lines = _matrix_text().splitlines()
    lines.append(lines[1])
    with pytest.raises(InputError, match=r"lines 2 and 35: duplicated gene ID 'ENSG00000141510.18'") as e:
        L.read_count_matrix(_write(tmp_path, "\n".join(lines)))
    assert "lines 2 and 35" in _one_line(e)


def test_duplicated_sample_ids(tmp_path):
    text = _matrix_text().replace("BM_pt03", "BM_pt02", 1)
    with pytest.raises(InputError, match="duplicated sample ID 'BM_pt02'"):
        L.read_count_matrix(_write(tmp_path, text))
    p = tmp_path / "s.tsv"
    p.write_text("sample_id\tresponse\nA\tCR\nA\tNR\n")
    with pytest.raises(InputError, match="lines 2 and 3: duplicated sample ID 'A'") as e:
        L.read_sample_sheet(p)
    assert "lines 2 and 3" in _one_line(e)


def _cohort():
    counts = L.read_count_matrix(FMT / "counts_symbols_rstyle.csv")
    sheet = L.read_sample_sheet(FMT / "samples_titles.tsv")
    return counts, sheet


def test_sample_in_matrix_not_in_sheet():
    counts, sheet = _cohort()
    with pytest.raises(InputError, match="1 sample.*in the matrix but not in the sheet.*BM_pt06") as e:
        L.validate_cohort(counts, sheet.drop(index="BM_pt06"))
    assert "samples_titles.tsv" in _one_line(e)


def test_sample_in_sheet_not_in_matrix():
    counts, sheet = _cohort()
    with pytest.raises(InputError, match="in the sheet but not in the matrix.*BM_pt01") as e:
        L.validate_cohort(counts.drop(columns="BM_pt01"), sheet)
    assert "counts_symbols_rstyle.csv" in _one_line(e)


def test_unknown_response_label(tmp_path):
    counts, sheet = _cohort()
    sheet.loc["BM_pt04", "response"] = "PR"
    with pytest.raises(InputError, match="unknown response label 'PR' for sample 'BM_pt04'"):
        L.validate_cohort(counts, sheet)
    p = tmp_path / "s.tsv"
    p.write_text("sample_id\tresponse\nA\tCR\nB\tPR\n")
    with pytest.raises(InputError, match="unknown response label 'PR'.*") as e:
        L.read_sample_sheet(p, labels=("CR", "NR"))
    assert "line 3" in _one_line(e)


def test_fewer_than_two_per_class():
    counts, sheet = _cohort()
    sheet.loc["BM_pt05", "response"] = "CR"
    with pytest.raises(InputError, match="class 'NR' has 1 sample"):
        L.validate_cohort(counts, sheet)


def test_no_genes_left():
    counts, sheet = _cohort()
    with pytest.raises(InputError, match="no genes left after filtering"):
        L.validate_cohort(counts.iloc[:0], sheet)


def test_validate_catches_bad_values_in_frames():
    counts, sheet = _cohort()
    c = counts.astype(float)
    c.iloc[2, 1] = np.nan
    with pytest.raises(InputError, match="gene 'CD8A', column 'BM_pt02': missing value"):
        L.validate_cohort(c, sheet)
    c = counts.astype(float)
    c.iloc[0, 0] = 2.5
    with pytest.raises(InputError, match="non-integer count 2.5"):
        L.validate_cohort(c, sheet)
    L.validate_cohort(c, sheet, counts_expected=False)  # fine as log-expression
    c = counts.copy()
    c.iloc[0, 0] = -1
    with pytest.raises(InputError, match="negative count -1"):
        L.validate_cohort(c, sheet)


def test_sample_sheet_missing_columns_and_empty_response(tmp_path):
    p = tmp_path / "s.tsv"
    p.write_text("sample_id\toutcome\nA\tCR\n")
    with pytest.raises(InputError, match="response column 'response' not found"):
        L.read_sample_sheet(p)
    p.write_text("sample_id\tresponse\nA\tCR\nB\t\n")
    with pytest.raises(InputError, match="empty response for sample 'B'") as e:
        L.read_sample_sheet(p)
    assert "line 3" in _one_line(e)


def test_htseq_bad_inputs(tmp_path):
    shutil.copytree(FMT / "htseq", tmp_path / "h")
    f = tmp_path / "h" / "SRR6000002.counts.txt"
    lines = f.read_text().splitlines()
    f.write_text("\n".join(lines[:-8] + lines[-5:]) + "\n")  # three genes missing
    with pytest.raises(InputError, match="gene list differs from SRR6000001.counts.txt") as e:
        L.read_htseq_dir(tmp_path / "h")
    assert "SRR6000002" in _one_line(e)
    f.write_text("\n".join(lines).replace("\t", " ") + "\n")
    with pytest.raises(InputError, match="only one column"):
        L.read_htseq_dir(tmp_path / "h")
    with pytest.raises(InputError, match="no files matching"):
        L.read_htseq_dir(tmp_path / "h", pattern="*.bam")
    with pytest.raises(InputError, match="folder not found"):
        L.read_htseq_dir(tmp_path / "nothing")


def test_series_matrix_bad_inputs(tmp_path):
    p = tmp_path / "x_series_matrix.txt"
    p.write_text('!Series_title\t"x"\n!Sample_title\t"a"\t"b"\n')
    with pytest.raises(InputError, match="not a GEO series-matrix"):
        L.read_series_matrix(p)
    p.write_text('!Sample_geo_accession\t"GSM1"\t"GSM2"\n!Sample_characteristics_ch1\t"r: CR"\n')
    with pytest.raises(InputError, match="1 values for 2 samples") as e:
        L.read_series_matrix(p)
    assert "line 2" in _one_line(e)


# ----------------------------------------------------------------------------- real-world layouts (issue 16)


def _big_counts(tmp_path, n_genes=300, samples=("S1", "S2", "S3", "S4"), seed=0, name="big.tsv", header_prefix=""):
    """A count table large enough for the scale rules (>= 1000 values), wide range of means."""
    rng = np.random.default_rng(seed)
    mu = np.exp(rng.normal(4, 2, n_genes))
    c = rng.poisson(mu[:, None] * np.ones(len(samples)))
    df = pd.DataFrame(
        c, index=pd.Index([f"G{i}" for i in range(n_genes)], name=header_prefix + "gene"), columns=list(samples)
    )
    p = tmp_path / name
    df.to_csv(p, sep="\t")
    return p, df


def test_hash_prefixed_header_is_the_header(tmp_path):
    p, df = _big_counts(tmp_path, header_prefix="#")
    assert p.read_text().startswith("#gene\tS1")
    got = L.read_count_matrix(p)
    assert list(got.columns) == ["S1", "S2", "S3", "S4"] and got.shape == df.shape
    s = tmp_path / "s.tsv"
    s.write_text("#sample_id\tresponse\nS1\tCR\nS2\tNR\n")
    assert L.read_sample_sheet(s).index.tolist() == ["S1", "S2"]
    # a comment line without fields stays a comment (featureCounts)
    s.write_text("# made by hand\nsample_id\tresponse\nS1\tCR\n")
    assert L.read_sample_sheet(s).index.tolist() == ["S1"]
    # a '#' line followed by a header row is a comment, however many fields it has
    s.write_text("#note\tx\nsample_id\tresponse\nS1\tCR\n")
    assert L.read_sample_sheet(s).index.tolist() == ["S1"]


def test_excel_files_are_named(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.append(["gene", "S1", "S2"])
    wb.active.append(["TP53", 1, 2])
    x = tmp_path / "counts.xlsx"
    wb.save(x)
    for reader in (L.read_count_matrix, L.read_logexpr, L.read_sample_sheet):
        with pytest.raises(InputError, match=r"Excel workbook \(.xlsx\).*Tab delimited") as e:
            reader(x)
        assert "counts.xlsx" in _one_line(e)
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    with pytest.raises(InputError, match=r"Excel 97-2003 workbook"):
        L.read_count_matrix(xls)
    import zipfile

    z = tmp_path / "counts.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("counts.tsv", "gene\tS1\nTP53\t1\n")
    with pytest.raises(InputError, match="zip archive"):
        L.read_count_matrix(z)


def test_utf16_text_is_read(tmp_path):
    s = tmp_path / "s.txt"
    s.write_bytes("sample_id\tresponse\nS1\tCR\nS2\tNR\n".encode("utf-16"))
    assert L.read_sample_sheet(s).response.tolist() == ["CR", "NR"]


def test_blank_excel_sheet(tmp_path):
    s = tmp_path / "s.csv"
    for text in (",,,\n,,,\n", ";;;\r\n", "\t\t\n\t\t\n", "# only a comment\n"):
        s.write_text(text)
        with pytest.raises(InputError) as e:
            L.read_sample_sheet(s)
        assert "s.csv" in _one_line(e)
        assert e.type is InputError


def test_excel_trailing_empty_columns_are_dropped(tmp_path):
    s = tmp_path / "s.csv"
    s.write_text("sample_id,response,,\nS1,CR,,\nS2,NR,,\n")
    df = L.read_sample_sheet(s)
    assert list(df.columns) == ["sample_id", "response"] and df.index.tolist() == ["S1", "S2"]
    s.write_text("sample_id,response,,\nS1,CR,,\nS2,NR,x,\n")  # a value under an unnamed column: an error
    with pytest.raises(InputError, match="line 3: value .x. in column 3, which has no name in the header"):
        L.read_sample_sheet(s)


def test_semicolon_csv_hint(tmp_path):
    p = _write(tmp_path, "gene;S1;S2\nTP53;1;2\n")
    with pytest.raises(InputError, match="semicolons"):
        L.read_count_matrix(p)


def test_count_too_large(tmp_path):
    p = _write(tmp_path, _edit_cell(_matrix_text(), 4, 2, "99999999999999999999"))
    with pytest.raises(InputError, match="too large to be a read count") as e:
        L.read_count_matrix(p)
    msg = _one_line(e)
    assert "line 4" in msg and "'BM_pt02'" in msg and "negative" not in msg
    p = _write(tmp_path, _edit_cell(_matrix_text(), 4, 2, str(2**53)), "ok.tsv")
    assert L.read_count_matrix(p).iloc[2, 1] == 2**53


def test_annotation_columns_only_after_the_id_or_as_text(tmp_path):
    p, df = _big_counts(tmp_path, samples=("S1", "S2", "S3", "Length"))
    got = L.read_count_matrix(p)
    assert list(got.columns) == ["S1", "S2", "S3", "Length"] and got.attrs["dropped_columns"] == []
    t = df.assign(gene_name=[f"name{i}" for i in range(len(df))])
    t.to_csv(tmp_path / "t.tsv", sep="\t")
    got = L.read_count_matrix(tmp_path / "t.tsv")
    assert got.attrs["dropped_columns"] == ["gene_name"] and "gene_name" not in got.columns
    lead = df[["Length", "S1", "S2", "S3"]]
    lead.to_csv(tmp_path / "lead.tsv", sep="\t")
    got = L.read_count_matrix(tmp_path / "lead.tsv")
    assert got.attrs["dropped_columns"] == ["Length"]
    sheet = pd.DataFrame({"sample_id": ["Length", "S1", "S2", "S3"], "response": ["CR", "CR", "NR", "NR"]})
    sheet.to_csv(tmp_path / "s.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match="column 'Length', but it was dropped as an annotation column") as e:
        L.validate_cohort(got, L.read_sample_sheet(tmp_path / "s.tsv"))
    assert "lead.tsv" in _one_line(e)


def test_scale_rules_in_the_readers(tmp_path):
    p, df = _big_counts(tmp_path)
    L.read_count_matrix(p)
    with pytest.raises(InputError, match="kind: counts"):
        L.read_logexpr(p)
    rounded = np.round(np.log2(df + 1)).astype(int)
    rounded.to_csv(tmp_path / "r.tsv", sep="\t")
    with pytest.raises(InputError, match="integer-rounded log values.*set kind: logexpr") as e:
        L.read_count_matrix(tmp_path / "r.tsv")
    assert "r.tsv: largest value at line" in _one_line(e)
    L.read_logexpr(tmp_path / "r.tsv")  # fine as log values
    assert L.read_count_matrix(tmp_path / "r.tsv", check_scale=False).shape == df.shape
    (df * 1000).to_csv(tmp_path / "k.tsv", sep="\t")
    with pytest.raises(InputError, match="impossible on a log scale") as e:
        L.read_logexpr(tmp_path / "k.tsv")
    g = df.stack().idxmax()[0]
    assert f"(gene {g!r})" in _one_line(e)


def test_empty_library_and_constant_sample(tmp_path):
    counts, sheet = _cohort()
    c = counts.copy()
    c["BM_pt03"] = 0
    with pytest.raises(InputError, match="column 'BM_pt03': sample column 'BM_pt03' has no reads") as e:
        L.validate_cohort(c, sheet)
    assert "counts_symbols_rstyle.csv" in _one_line(e)
    le = np.log2(counts + 1.0)
    le.attrs["source"] = "le.tsv"
    L.validate_cohort(le, sheet, counts_expected=False)
    le["BM_pt02"] = 4.0
    with pytest.raises(InputError, match="le.tsv: column 'BM_pt02': sample column 'BM_pt02' is constant"):
        L.validate_cohort(le, sheet, counts_expected=False)


def test_label_messages_list_the_labels_found():
    counts, sheet = _cohort()
    with pytest.raises(InputError, match=r"labels \['NR', 'NR'\] are not distinct.*holds CR \(4\), NR \(2\)"):
        L.validate_cohort(counts, sheet, labels=("NR", "NR"))
    with pytest.raises(InputError, match=r"unknown response label 'CR'.*holds CR \(4\), NR \(2\)"):
        L.validate_cohort(counts, sheet, labels=("responder", "NR"))
    assert L.label_counts(pd.Series(["b", "a", None, "a"])) == "<empty> (1), a (2), b (1)"
