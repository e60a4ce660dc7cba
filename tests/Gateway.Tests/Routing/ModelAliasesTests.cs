using HybridServing.Gateway.Routing;
using Microsoft.Extensions.Options;

namespace HybridServing.Gateway.Tests.Routing;

public sealed class ModelAliasesTests
{
    private static ModelAliases Create(params (string Alias, string Target, double Weight)[] entries)
    {
        var o = new GatewayOptions();
        foreach (var (alias, target, weight) in entries)
        {
            if (!o.Aliases.TryGetValue(alias, out var targets)) o.Aliases[alias] = targets = [];
            targets[target] = weight;
        }
        return new ModelAliases(Options.Create(o));
    }

    [Fact]
    public void A_key_always_gets_the_same_version()
    {
        var aliases = Create(("support", "v1", 1), ("support", "v2", 1));
        for (var user = 0; user < 50; user++)
        {
            var first = aliases.Choose("support", $"user-{user}");
            Assert.All(Enumerable.Range(0, 5), _ => Assert.Equal(first, aliases.Choose("support", $"user-{user}")));
        }
        Assert.Null(aliases.Choose("not-an-alias", "user-1"));
    }

    [Fact]
    public void Keys_split_by_weight()
    {
        var aliases = Create(("support", "stable", 90), ("support", "canary", 10));
        var canary = Enumerable.Range(0, 20_000).Count(i => aliases.Choose("support", $"k{i}") == "canary");
        Assert.InRange(canary, 1_600, 2_400);
    }

    [Fact]
    public void Ramping_a_canary_moves_only_the_added_slice()
    {
        var at10 = Create(("support", "a-stable", 90), ("support", "b-canary", 10));
        var at20 = Create(("support", "a-stable", 80), ("support", "b-canary", 20));
        var keys = Enumerable.Range(0, 10_000).Select(i => $"k{i}").ToList();
        // Everyone on the canary at 10% stays there at 20%.
        Assert.All(keys.Where(k => at10.Choose("support", k) == "b-canary"), k => Assert.Equal("b-canary", at20.Choose("support", k)));
        var moved = keys.Count(k => at10.Choose("support", k) != at20.Choose("support", k));
        Assert.InRange(moved, 700, 1_300);
    }

    [Theory]
    [InlineData("x", "x", 1, "points at itself")]
    [InlineData("x", "y", 0, "weights must be > 0")]
    [InlineData("x", "y", -2, "weights must be > 0")]
    public void Bad_configuration_is_rejected(string alias, string target, double weight, string message) =>
        Assert.Contains(message, Assert.Throws<InvalidOperationException>(() => Create((alias, target, weight))).Message);

    [Fact]
    public void Aliases_of_aliases_are_rejected() =>
        Assert.Contains("names another alias", Assert.Throws<InvalidOperationException>(() => Create(("a", "b", 1), ("b", "c", 1))).Message);
}
