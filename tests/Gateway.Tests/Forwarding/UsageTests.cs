using System.Text;
using HybridServing.Gateway.Forwarding;
using HybridServing.Gateway.Tenancy;
using Microsoft.Extensions.Time.Testing;

namespace HybridServing.Gateway.Tests.Forwarding;

public sealed class UsageTests
{
    [Theory]
    [InlineData("""{"id":"x","choices":[],"usage":{"prompt_tokens":12,"total_tokens":20,"completion_tokens":8,"prompt_tokens_details":null},"kv_transfer_params":null}""", 12, 8)]
    [InlineData("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":5,\"total_tokens\":8}}\n\ndata: [DONE]\n\n", 3, 5)]
    [InlineData("""{"choices":[{"message":{"content":"the \"usage\" of words"}}],"usage" : {"completion_tokens":4}}""", 0, 4)]
    public void Reads_the_last_usage_object(string tail, long prompt, long completion)
    {
        var usage = UsageReader.TryRead(Encoding.UTF8.GetBytes(tail));
        Assert.Equal(new TokenUsage(prompt, completion), usage);
    }

    [Theory]
    [InlineData("""{"choices":[]}""")]
    [InlineData("""{"usage":null}""")]
    [InlineData("""{"usage":{"prompt_tokens":"many"}}""")]
    [InlineData("""{"usage":{"prompt_tokens":-4}}""")]
    [InlineData("""ge":{"prompt_tokens":1}}""")]
    [InlineData("""{"usage":{"prompt_tok""")]
    public void Finds_nothing_where_there_is_no_usable_usage(string tail) =>
        Assert.Null(UsageReader.TryRead(Encoding.UTF8.GetBytes(tail)));

    [Fact]
    public async Task The_tap_passes_bytes_through_and_keeps_the_tail()
    {
        using var sink = new MemoryStream();
        var firstBytes = 0;
        var tap = new ResponseTap(sink, () => firstBytes++);
        var data = Enumerable.Range(0, 10_000).Select(i => (byte)(i % 251)).ToArray();
        await tap.WriteAsync(ReadOnlyMemory<byte>.Empty);
        Assert.Equal(0, firstBytes);
        for (var i = 0; i < data.Length; i += 333) await tap.WriteAsync(data.AsMemory(i, Math.Min(333, data.Length - i)));
        Assert.Equal(data, sink.ToArray());
        Assert.Equal(1, firstBytes);
        Assert.Equal(data[^ResponseTap.TailBytes..], tap.Tail.ToArray());
        tap.Write(data, 0, 5000);
        Assert.Equal(data[(5000 - ResponseTap.TailBytes)..5000], tap.Tail.ToArray());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(97)]
    [InlineData(4095)]
    [InlineData(4096)]
    [InlineData(5000)]
    public async Task The_tail_is_the_last_bytes_in_order_whatever_the_chunk_sizes_and_when_it_is_read(int chunk)
    {
        using var sink = new MemoryStream();
        using var tap = new ResponseTap(sink, () => { });
        var data = Enumerable.Range(0, 9_000).Select(i => (byte)(i * 7 % 253)).ToArray();
        var written = 0;
        while (written < data.Length)
        {
            var n = Math.Min(chunk, data.Length - written);
            await tap.WriteAsync(data.AsMemory(written, n));
            written += n;
            // Reading the tail (which straightens the ring) must not disturb what follows.
            if (written % 3 == 0) Assert.Equal(data[Math.Max(0, written - ResponseTap.TailBytes)..written], tap.Tail.ToArray());
        }
        Assert.Equal(data[^ResponseTap.TailBytes..], tap.Tail.ToArray());
        Assert.Equal(data, sink.ToArray());
    }

    [Fact]
    public void Token_windows_roll_every_minute()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
        var ledger = new UsageLedger(time);
        ledger.RecordTokens("t", 10, 5);
        time.Advance(TimeSpan.FromSeconds(40));
        ledger.RecordTokens("t", 1, 1);
        var (tokens, resetsIn) = ledger.TokensThisMinute("t");
        Assert.Equal(17, tokens);
        Assert.Equal(TimeSpan.FromSeconds(20), resetsIn);
        time.Advance(TimeSpan.FromSeconds(21));
        Assert.Equal(0, ledger.TokensThisMinute("t").Tokens);
        var view = Assert.Single(ledger.Snapshot());
        Assert.Equal((11L, 6L), (view.PromptTokens, view.CompletionTokens));
    }
}
