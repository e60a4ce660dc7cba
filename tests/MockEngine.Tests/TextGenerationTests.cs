using HybridServing.MockEngine.Serving;

namespace HybridServing.MockEngine.Tests;

public sealed class TextGenerationTests
{
    private readonly TokenCounter _tokens = new();

    [Fact]
    public void Every_word_is_one_token()
    {
        var multi = TextGenerator.Words.Where(w => _tokens.Count(w) != 1).ToArray();
        Assert.Empty(multi);
    }

    [Theory]
    [InlineData(1UL, 1)]
    [InlineData(2UL, 17)]
    [InlineData(12345UL, 128)]
    [InlineData(999UL, 500)]
    public void Generated_text_has_exactly_the_requested_token_count(ulong seed, int count)
    {
        var pieces = TextGenerator.Pieces(seed, count);
        Assert.Equal(count, pieces.Length);
        Assert.Equal(count, _tokens.Count(string.Concat(pieces)));
    }

    [Fact]
    public void Same_seed_same_text_other_seed_other_text()
    {
        var a = TextGenerator.SeedFor(0, null, "m", "hello");
        Assert.Equal(a, TextGenerator.SeedFor(0, null, "m", "hello"));
        Assert.NotEqual(a, TextGenerator.SeedFor(1, null, "m", "hello"));
        Assert.NotEqual(a, TextGenerator.SeedFor(0, null, "adapter", "hello"));
        Assert.Equal(TextGenerator.Pieces(a, 30), TextGenerator.Pieces(a, 30));
        Assert.NotEqual(TextGenerator.Pieces(a, 30), TextGenerator.Pieces(a + 1, 30));
        Assert.InRange(TextGenerator.NaturalLength(a), 16, 128);
    }

    [Fact]
    public void Chat_prompt_counts_template_tokens_around_each_message()
    {
        var one = _tokens.CountChat([("user", "hello")]);
        var two = _tokens.CountChat([("system", "be brief"), ("user", "hello")]);
        Assert.Equal(1 + (3 + 1 + 1 + 1) + (3 + 1 + 1), one); // BOS, header+content+eot, assistant header
        Assert.Equal(one + 3 + 1 + 1 + 2, two);
    }
}
