from bench.model_stats import main, model_stats
from network import Discriminator


def test_model_stats_counts_match_the_networks(tiny_config, capsys):
    stats = model_stats(tiny_config, num_videos=7)
    d = Discriminator(tiny_config.model)
    assert stats["discriminator"]["params"] == sum(p.numel() for p in d.parameters())
    assert stats["discriminator"]["W_params"] == 7 * tiny_config.model.embedding_dim
    assert stats["generator"]["adain_params_rows_of_P"] == 144
    assert all(row["gflops"] > 0 for row in stats.values())
    assert main(["--config", "params/tiny.yaml", "--num-videos", "3"]) == 0
    assert "rows of P" in capsys.readouterr().out
