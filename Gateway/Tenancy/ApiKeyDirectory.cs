using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace HybridServing.Gateway.Tenancy;

/// <summary>
/// The current <see cref="ApiKeyStore"/>, swapped whole when the keys file changes (a rotated
/// Kubernetes Secret). Change is detected by content hash, not file events: Secret volumes swap a
/// symlink, which file watchers miss. A broken new file never replaces a working store.
/// </summary>
internal sealed partial class ApiKeyDirectory
{
    private readonly GatewayOptions _options;
    private readonly ILogger<ApiKeyDirectory> _logger;
    private volatile ApiKeyStore _current;
    private byte[]? _fileHash;

    public ApiKeyDirectory(IOptions<GatewayOptions> options, ILogger<ApiKeyDirectory> logger)
    {
        _options = options.Value;
        _logger = logger;
        _fileHash = HashFile();
        // The first load throws: a gateway with a broken keys file must not start.
        _current = ApiKeyStore.Load(_options);
    }

    public ApiKeyStore Current => _current;

    /// <summary>Reloads when the keys file's content changed; true when a new store is in use.</summary>
    public bool ReloadIfChanged()
    {
        if (string.IsNullOrWhiteSpace(_options.Tenancy.KeysFile)) return false;
        var hash = HashFile();
        if (hash is null || (_fileHash is not null && hash.AsSpan().SequenceEqual(_fileHash))) return false;
        try
        {
            var store = ApiKeyStore.Load(_options);
            _current = store;
            _fileHash = hash;
            LogReloaded(_options.Tenancy.KeysFile, store.Count);
            return true;
        }
        catch (InvalidOperationException ex)
        {
            // Remember the broken content so it is reported once, not on every poll.
            _fileHash = hash;
            LogReloadFailed(ex.Message);
            return false;
        }
    }

    private byte[]? HashFile()
    {
        var path = _options.Tenancy.KeysFile;
        if (string.IsNullOrWhiteSpace(path)) return null;
        try
        {
            return SHA256.HashData(File.ReadAllBytes(path));
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    [LoggerMessage(EventId = 600, Level = LogLevel.Information, Message = "Reloaded API keys from {Path}: {Count} keys.")]
    private partial void LogReloaded(string path, int count);

    [LoggerMessage(EventId = 601, Level = LogLevel.Error, Message = "The changed keys file is invalid and was not applied; the previous keys stay in use: {Reason}")]
    private partial void LogReloadFailed(string reason);
}

/// <summary>Polls the keys file for rotation every <c>Gateway:Tenancy:KeysFileReloadInterval</c>.</summary>
internal sealed class ApiKeyFileWatcher(ApiKeyDirectory keys, IOptions<GatewayOptions> options, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value.Tenancy;
        if (string.IsNullOrWhiteSpace(o.KeysFile) || o.KeysFileReloadInterval <= TimeSpan.Zero) return;
        using var timer = new PeriodicTimer(o.KeysFileReloadInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken)) keys.ReloadIfChanged();
        }
        catch (OperationCanceledException)
        {
        }
    }
}
