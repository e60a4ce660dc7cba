namespace HybridServing.AppHost.Tests;

/// <summary>Polls a probe of a running stack until it yields a value (or the token's deadline passes).</summary>
internal static class Eventually
{
    /// <summary>Runs <paramref name="probe"/> every 200 ms until it returns non-null; a connection failure counts as "not yet".</summary>
    public static async Task<T> ValueAsync<T>(Func<Task<T?>> probe, CancellationToken cancellationToken) where T : class
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                if (await probe() is { } value) return value;
            }
            catch (HttpRequestException)
            {
            }
            await Task.Delay(200, cancellationToken);
        }
    }
}
