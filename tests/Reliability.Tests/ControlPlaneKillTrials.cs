using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Xunit.Abstractions;
using static HybridServing.Reliability.Tests.ComponentKillTrials;

namespace HybridServing.Reliability.Tests;

/// <summary>Trial 3 (local home): the ControlPlane SIGKILLed and restarted under load (a class of its own, so it runs beside trial 2).</summary>
public sealed class ControlPlaneKillTrials(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Killed_ControlPlane_leaves_gateways_routing_and_cold_starts_answer_503_with_Retry_After_until_it_is_back()
    {
        const string warm = "chat-a", cold = "cold-a";
        await using var stack = await LocalStack.StartAsync(engines: 2, [warm], replicas: 2, coldAdapters: [cold]);
        await stack.WaitPlacedAsync([warm], 2, Generous);

        var failures = new ConcurrentQueue<string>();
        await using var trickle = new Trickle(stack, warm, failures);
        await stack.ControlPlane.KillAsync();
        var refused = 0;
        for (var i = 0; i < 3; i++)
        {
            using var response = await stack.Client.SendAsync(LocalStack.Chat(cold, stream: false));
            var body = await response.Content.ReadAsStringAsync();
            if (IsCleanRetryLater(response, body)) refused++;
            else failures.Enqueue($"cold start while the ControlPlane is down: {(int)response.StatusCode} {response.Headers.RetryAfter}: {LocalStack.Tail(body)}");
        }

        await stack.ControlPlane.RestartAsync();
        var watch = Stopwatch.StartNew();
        var coldSent = 3;
        await LocalStack.WaitUntilAsync(async () =>
        {
            coldSent++;
            using var response = await stack.Client.SendAsync(LocalStack.Chat(cold, stream: false));
            var body = await response.Content.ReadAsStringAsync();
            if (response.StatusCode == HttpStatusCode.OK) return true;
            if (!IsCleanRetryLater(response, body)) failures.Enqueue($"cold start while the ControlPlane comes back: {(int)response.StatusCode}: {LocalStack.Tail(body)}");
            return false;
        }, Generous, $"{cold} served after the ControlPlane's restart");
        var recovery = watch.Elapsed;
        var (sent, lost) = await trickle.StopAsync();

        new TrialFigures("3 ControlPlane SIGKILL + restart", 1, sent + coldSent, lost, [recovery],
            $"{refused} cold starts while down: 503 + Retry-After; recovery = ControlPlane restart to the cold adapter served").Record(output);
        Assert.True(failures.IsEmpty, string.Join(Environment.NewLine, failures));
        Assert.Equal(3, refused);
        Assert.True(sent > 0);
    }

}
