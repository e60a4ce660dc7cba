using HybridServing.Contracts.Engines;
using HybridServing.Contracts.Metrics;
using HybridServing.Contracts.OpenAi;
using HybridServing.EngineSidecar.Configuration;
using HybridServing.EngineSidecar.Telemetry;
using Microsoft.Extensions.Logging;

namespace HybridServing.EngineSidecar.Engines;

/// <summary>The engine could not answer after every retry.</summary>
internal sealed class EngineUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Wraps an <see cref="IEngineClient"/> with per-call timeouts and retries with exponential backoff and jitter.
/// Only transient failures are retried (no connection, 429, 502/503/504, timeouts, and 500 without vLLM's error
/// envelope): a 4xx, or a 500 that carries vLLM's envelope (newer builds report a bad adapter that way), is an
/// answer and retrying it would only repeat it.
/// </summary>
internal sealed class ResilientEngineClient(IEngineClient client, EngineCallOptions options, TimeProvider time, ILogger<ResilientEngineClient> logger,
    Func<Uri, IEngineClient>? retarget = null)
{
    private volatile IEngineClient inner = client;

    public string Kind => inner.Kind;
    public Uri BaseAddress => inner.BaseAddress;

    /// <summary>Talks to the engine at <paramref name="url"/> from the next call on (file mode follows the config's
    /// host and port). Returns false when already there, or when this client was built for one fixed engine.</summary>
    public bool Retarget(Uri url)
    {
        if (retarget is null || url == inner.BaseAddress) return false;
        inner = retarget(url);
        return true;
    }

    private TimeSpan RequestTimeout => SidecarOptions.Seconds(options.RequestTimeoutSeconds);
    private TimeSpan LoadTimeout => SidecarOptions.Seconds(options.LoadTimeoutSeconds);

    public static bool IsTransient(EngineCallResult r) =>
        r.StatusCode is 0 or 429 or 502 or 503 or 504 || (r.StatusCode == 500 && r.ErrorType is null);

    public Task<EngineCallResult> LoadAsync(string name, string path, bool inPlace, CancellationToken cancellationToken, bool pinned = false) =>
        CallAsync("load " + name, LoadTimeout, ct => inner.LoadAdapterAsync(name, path, inPlace, pinned, ct), cancellationToken);

    public Task<EngineCallResult> UnloadAsync(string name, CancellationToken cancellationToken) =>
        CallAsync("unload " + name, RequestTimeout, ct => inner.UnloadAdapterAsync(name, ct), cancellationToken);

    private async Task<EngineCallResult> CallAsync(string operation, TimeSpan timeout, Func<CancellationToken, Task<EngineCallResult>> call, CancellationToken cancellationToken)
    {
        EngineCallResult result = null!;
        for (var attempt = 1; attempt <= options.MaxAttempts; attempt++)
        {
            using var deadline = new CancellationTokenSource(timeout, time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
            try
            {
                result = await call(linked.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                result = new EngineCallResult(false, 0, "Timeout", $"The engine did not answer {operation} within {timeout.TotalSeconds:0.###} s.");
            }
            catch (HttpRequestException e)
            {
                result = new EngineCallResult(false, 0, "ConnectionFailed", e.Message);
            }
            if (result.Success || !IsTransient(result)) return result;
            if (attempt < options.MaxAttempts)
            {
                Log.EngineCallRetry(logger, operation, attempt, options.MaxAttempts, result.Message);
                await Task.Delay(Backoff(attempt), time, cancellationToken);
            }
        }
        return result;
    }

    /// <summary>Lists the engine's models, retrying transient failures; throws <see cref="EngineUnavailableException"/> at the end.</summary>
    public async Task<IReadOnlyList<ModelCard>> ListModelsAsync(CancellationToken cancellationToken)
    {
        Exception? last = null;
        for (var attempt = 1; attempt <= options.MaxAttempts; attempt++)
        {
            using var deadline = new CancellationTokenSource(RequestTimeout, time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
            try
            {
                return await inner.ListModelsAsync(linked.Token);
            }
            catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                last = new TimeoutException($"The engine did not answer /v1/models within {RequestTimeout.TotalSeconds:0.###} s.", e);
            }
            catch (Exception e) when (e is HttpRequestException or System.Text.Json.JsonException or InvalidDataException)
            {
                last = e;
            }
            if (attempt < options.MaxAttempts)
            {
                Log.EngineCallRetry(logger, "list models", attempt, options.MaxAttempts, last.Message);
                await Task.Delay(Backoff(attempt), time, cancellationToken);
            }
        }
        throw new EngineUnavailableException($"The engine's /v1/models failed: {last!.Message}", last);
    }

    /// <summary>One /v1/models call with the request timeout and no retries, for pollers; null when it failed.</summary>
    public async Task<IReadOnlyList<ModelCard>?> TryListModelsOnceAsync(CancellationToken cancellationToken)
    {
        using var deadline = new CancellationTokenSource(RequestTimeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            return await inner.ListModelsAsync(linked.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
        catch (Exception e) when (e is HttpRequestException or System.Text.Json.JsonException or InvalidDataException)
        {
            return null;
        }
    }

    /// <summary>One health probe with the request timeout; pollers repeat it.</summary>
    public async Task<bool> IsHealthyAsync(CancellationToken cancellationToken)
    {
        using var deadline = new CancellationTokenSource(RequestTimeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            return await inner.IsHealthyAsync(linked.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    /// <summary>One metrics scrape; null when the engine did not answer (load is then unknown, not zero).</summary>
    public async Task<EngineLoadSnapshot?> GetLoadAsync(CancellationToken cancellationToken)
    {
        using var deadline = new CancellationTokenSource(RequestTimeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            return await inner.GetLoadAsync(linked.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    private TimeSpan Backoff(int attempt)
    {
        var baseDelay = options.RetryBaseDelaySeconds * Math.Pow(2, attempt - 1);
        // Jitter keeps the sidecars of a fleet from retrying a recovering engine pool in lockstep.
        var jitter = 0.8 + Random.Shared.NextDouble() * 0.4;
        return TimeSpan.FromSeconds(Math.Min(baseDelay * jitter, 10));
    }
}
