using System.Collections.Concurrent;
using System.Net;

namespace HybridServing.Reliability.Tests;

/// <summary>
/// Non-streaming requests for one model through the gateway, one after another, until stopped: the load
/// that runs through a fault. Anything but a 200 (or a client-side exception) is a lost request.
/// </summary>
public sealed class Trickle : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _running;
    private readonly ConcurrentQueue<string> _failures;
    private int _sent;
    private int _lost;

    public Trickle(LocalStack stack, string model, ConcurrentQueue<string> failures)
    {
        _failures = failures;
        _running = RunAsync(stack, model);
    }

    public int Sent => Volatile.Read(ref _sent);
    public int Lost => Volatile.Read(ref _lost);

    private async Task RunAsync(LocalStack stack, string model)
    {
        while (!_stop.IsCancellationRequested)
        {
            Interlocked.Increment(ref _sent);
            try
            {
                using var response = await stack.Client.SendAsync(LocalStack.Chat(model, stream: false));
                var body = await response.Content.ReadAsStringAsync();
                if (response.StatusCode == HttpStatusCode.OK) continue;
                _failures.Enqueue($"trickle request for {model}: {(int)response.StatusCode}: {LocalStack.Tail(body)}");
            }
            catch (HttpRequestException e)
            {
                _failures.Enqueue($"trickle request for {model}: {e.Message}");
            }
            Interlocked.Increment(ref _lost);
        }
    }

    /// <summary>Stops after the request in flight; returns what was sent and lost.</summary>
    public async Task<(int Sent, int Lost)> StopAsync()
    {
        await _stop.CancelAsync();
        await _running;
        return (Sent, Lost);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested) await StopAsync();
        _stop.Dispose();
    }
}
