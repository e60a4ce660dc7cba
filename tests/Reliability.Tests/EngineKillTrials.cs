using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using HybridServing.TestKit;
using Xunit.Abstractions;

namespace HybridServing.Reliability.Tests;

/// <summary>
/// Trial 1: an engine SIGKILLed in the middle of streams. Defined end for a client whose stream was cut:
/// the gateway appends an OpenAI-shaped error event (<c>data: {"error":{...}}</c>) and then <c>data: [DONE]</c>
/// before closing the response normally, so SDKs that stop at [DONE] see an error instead of hanging or
/// mistaking a cut answer for a short one (the headers, 200, were already sent; a status cannot change).
/// </summary>
public sealed class EngineKillTrials(ITestOutputHelper output)
{
    private const string Adapter = "chat-a";
    private const int Cycles = 2;
    private const int StreamsPerCycle = 8;
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Killed_engine_mid_stream_ends_cut_streams_cleanly_loses_nothing_else_and_gets_its_adapters_back()
    {
        await using var stack = await LocalStack.StartAsync(engines: 2, [Adapter], replicas: 2);
        await stack.WaitPlacedAsync([Adapter], 2, Generous);

        int sent = 0, lost = 0, cut = 0;
        var recoveries = new List<TimeSpan>();
        var failures = new ConcurrentQueue<string>();
        for (var cycle = 0; cycle < Cycles; cycle++)
        {
            // Streams on both engines, each a few seconds long; the background trickle runs through the kill.
            var streams = Enumerable.Range(0, StreamsPerCycle).Select(_ => StartStreamAsync(stack)).ToList();
            var started = await Task.WhenAll(streams.Select(s => s.FirstToken));
            var victim = started.GroupBy(e => e).OrderByDescending(g => g.Count()).First().Key;
            var engine = stack.Engines.Single(e => e.Name == victim);
            await using var trickle = new Trickle(stack, Adapter, failures);

            await engine.KillAsync();
            foreach (var s in streams)
            {
                var result = await s.Completion;
                sent++;
                if (result.Engine == victim && !result.Complete)
                {
                    if (result.CleanErrorEnd) cut++;
                    else { lost++; failures.Enqueue($"cut stream on {victim} did not end with an error event then [DONE]: …{LocalStack.Tail(result.Text)}"); }
                }
                else if (!result.Complete)
                {
                    lost++;
                    failures.Enqueue($"stream on surviving {result.Engine} did not complete: …{LocalStack.Tail(result.Text)}");
                }
            }

            // New requests go elsewhere at once: every one answered 200 by the survivor while the victim is down.
            for (var i = 0; i < 10; i++)
            {
                using var response = await stack.Client.SendAsync(LocalStack.Chat(Adapter, stream: i % 2 == 1));
                var body = await response.Content.ReadAsStringAsync();
                sent++;
                var servedBy = response.Headers.TryGetValues("x-hybridserving-engine", out var v) ? v.Single() : "?";
                if (response.StatusCode != HttpStatusCode.OK || servedBy == victim)
                {
                    lost++;
                    failures.Enqueue($"request after the kill: {(int)response.StatusCode} from {servedBy}: {LocalStack.Tail(body)}");
                }
            }

            await engine.RestartAsync();
            var back = Stopwatch.StartNew();
            await LocalStack.WaitUntilAsync(async () => (await LocalStack.EngineAdaptersAsync(engine))?.Contains(Adapter) == true,
                Generous, $"{Adapter} back on restarted {victim}");
            recoveries.Add(back.Elapsed);
            output.WriteLine($"cycle {cycle}: killed {victim} under {started.Count(e => e == victim)} of {StreamsPerCycle} streams; adapters back {back.Elapsed.TotalSeconds:0.00} s after restart");

            var (trickleSent, trickleLost) = await trickle.StopAsync();
            sent += trickleSent;
            lost += trickleLost;
        }

        new TrialFigures("1 engine SIGKILL mid-stream", Cycles, sent, lost, recoveries,
            $"{cut} cut streams ended with error event + [DONE]; recovery = restart to adapters back on the engine").Record(output);
        Assert.True(failures.IsEmpty, string.Join(Environment.NewLine, failures));
        Assert.True(cut >= Cycles, $"every kill cut at least one stream (cut {cut})");
        Assert.Equal(0, lost);
    }

    private sealed record StreamResult(string Engine, string Text)
    {
        private IEnumerable<string> Events => Text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e.Trim());

        /// <summary>A finish_reason (stop or length), then [DONE], no error event.</summary>
        public bool Complete => Text.EndsWith("data: [DONE]\n\n", StringComparison.Ordinal) && !Text.Contains("\"error\"", StringComparison.Ordinal)
            && (Text.Contains("\"finish_reason\":\"length\"", StringComparison.Ordinal) || Text.Contains("\"finish_reason\":\"stop\"", StringComparison.Ordinal));

        /// <summary>The last two events are an OpenAI-shaped error (message and type) and [DONE].</summary>
        public bool CleanErrorEnd
        {
            get
            {
                var events = Events.ToList();
                if (events.Count < 2 || events[^1] != "data: [DONE]" || !events[^2].StartsWith("data: ", StringComparison.Ordinal)) return false;
                using var json = JsonDocument.Parse(events[^2]["data: ".Length..]);
                return json.RootElement.TryGetProperty("error", out var error)
                    && error.TryGetProperty("message", out var m) && m.GetString()!.Length > 0
                    && error.TryGetProperty("type", out var t) && t.GetString()!.Length > 0;
            }
        }
    }

    private sealed record RunningStream(Task<string> FirstToken, Task<StreamResult> Completion);

    /// <summary>A long stream through the gateway: FirstToken completes (with the serving engine) once a token arrived.</summary>
    private static RunningStream StartStreamAsync(LocalStack stack)
    {
        var first = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task<StreamResult> RunAsync()
        {
            try
            {
                using var response = await stack.Client.SendAsync(LocalStack.Chat(Adapter, stream: true, maxTokens: 150), HttpCompletionOption.ResponseHeadersRead);
                var engine = response.Headers.TryGetValues("x-hybridserving-engine", out var v) ? v.Single() : "?";
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                var text = new System.Text.StringBuilder();
                while (await reader.ReadLineAsync() is { } line)
                {
                    text.Append(line).Append('\n');
                    if (line.StartsWith("data: {", StringComparison.Ordinal)) first.TrySetResult(engine);
                }
                first.TrySetResult(engine);
                return new StreamResult(engine, text.ToString());
            }
            catch (Exception e)
            {
                first.TrySetResult("?");
                return new StreamResult("?", $"client saw {e.GetType().Name}: {e.Message}");
            }
        }
        return new RunningStream(first.Task, RunAsync());
    }

}
