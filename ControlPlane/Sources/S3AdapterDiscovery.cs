using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Amazon.Runtime;
using Amazon.Runtime.Credentials;
using Amazon.S3;
using Amazon.S3.Model;
using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Resources;
using Microsoft.Extensions.Options;

namespace HybridServing.ControlPlane.Sources;

/// <summary>
/// <c>type: s3</c>: <c>repository</c> is <c>bucket/prefix</c>; the adapters are the "directories" directly under the
/// prefix that hold <c>adapter_config.json</c> (or the prefix itself is one). One recursive listing gives every
/// key's size and ETag; each adapter then costs a GET of its config, two ranged GETs of the safetensors header and a
/// HEAD for the store's sha256 checksum, and nothing at all on the next listing while the ETags are unchanged.
/// Credentials: the secret's <c>AWS_ACCESS_KEY_ID</c>/<c>AWS_SECRET_ACCESS_KEY</c> (optional <c>AWS_SESSION_TOKEN</c>,
/// <c>AWS_ENDPOINT_URL</c>, <c>AWS_REGION</c>), else the environment, else the SDK's chain (IRSA, instance profile).
/// </summary>
internal sealed partial class S3AdapterDiscovery(IOptions<SourceOptions> options, ISecretReader secrets, SourceEnvironment environment, ILogger<S3AdapterDiscovery> logger) : IAdapterDiscovery
{
    private const int MaxListPages = 10_000;
    private readonly SourceOptions _options = options.Value;
    private readonly ConcurrentDictionary<string, (string Fingerprint, DiscoveredAdapter? Adapter, AdapterFailure? Failure)> _known = new(StringComparer.Ordinal);

    private readonly ConcurrentDictionary<string, int> _reportedNoChecksum = new(StringComparer.Ordinal);

    [GeneratedRegex(@"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")]
    private static partial Regex BucketName();

    private sealed record S3Object_(long Size, string ETag);

    public async Task<DiscoveryResult> DiscoverAsync(DiscoveryRequest request, CancellationToken cancellationToken)
    {
        var repository = request.Source.Repository.Trim().Trim('/');
        var slash = repository.IndexOf('/');
        var bucket = slash < 0 ? repository : repository[..slash];
        var prefix = slash < 0 ? "" : repository[(slash + 1)..].Trim('/');
        if (!BucketName().IsMatch(bucket))
            return DiscoveryResult.Unavailable(LoraAdapterReasons.InvalidSpec,
                $"spec.adapterSource.repository: Invalid value \"{request.Source.Repository}\": '{bucket}' is not a valid S3 bucket name (an s3 repository is bucket/prefix).");
        if (prefix.Length > 0 && prefix.Split('/').Any(s => s is "" or "." or ".."))
            return DiscoveryResult.Unavailable(LoraAdapterReasons.InvalidSpec,
                $"spec.adapterSource.repository: Invalid value \"{request.Source.Repository}\": the prefix must not contain empty, '.' or '..' segments.");
        var where = $"s3://{bucket}/{prefix}";
        try
        {
            var (client, hasCredentials) = await CreateClientAsync(request, cancellationToken);
            using (client)
            {
                var objects = await ListAsync(client, bucket, prefix, where, hasCredentials, cancellationToken);
                var root = prefix.Length > 0 ? prefix + "/" : "";
                var found = new Dictionary<string, string>(StringComparer.Ordinal);
                if (objects.ContainsKey(root + PeftAdapter.ConfigFileName))
                    found[prefix.Length > 0 ? prefix[(prefix.LastIndexOf('/') + 1)..] : bucket] = prefix;
                else
                    foreach (var key in objects.Keys)
                        if (key.StartsWith(root, StringComparison.Ordinal) && key.Length > root.Length + PeftAdapter.ConfigFileName.Length + 1
                            && key.EndsWith("/" + PeftAdapter.ConfigFileName, StringComparison.Ordinal)
                            && key[root.Length..^(PeftAdapter.ConfigFileName.Length + 1)] is { Length: > 0 } name && !name.Contains('/'))
                            found[name] = root + name;

                var failures = new List<AdapterFailure>();
                var selected = new NameFilter(request.Source).Select(found, where, failures);
                var result = await RemoteAdapterInspector.InspectAllAsync(selected, _options.SourceConcurrency,
                    (c, ct) => InspectAsync(client, bucket, c.Name, c.Location, objects, hasCredentials, ct), failures, cancellationToken);
                // Said once per source and count, not on every re-list.
                var unknown = result.Adapters.Count(a => a.Digest.Length == 0);
                if (unknown > 0 && _reportedNoChecksum.GetValueOrDefault(where) != unknown)
                    LogNoChecksum(logger, where, unknown);
                _reportedNoChecksum[where] = unknown;
                return result;
            }
        }
        catch (SourceException e)
        {
            return DiscoveryResult.Unavailable(e.Reason, e.Message);
        }
    }

    private async Task<(DiscoveredAdapter?, AdapterFailure?)> InspectAsync(IAmazonS3 client, string bucket, string name, string keyPrefix,
        IReadOnlyDictionary<string, S3Object_> objects, bool hasCredentials, CancellationToken cancellationToken)
    {
        var configKey = Join(keyPrefix, PeftAdapter.ConfigFileName);
        var weightsKey = Join(keyPrefix, PeftAdapter.SafetensorsFileName);
        var uri = keyPrefix.Length > 0 ? $"s3://{bucket}/{keyPrefix}" : $"s3://{bucket}";
        var config = objects.GetValueOrDefault(configKey);
        var weights = objects.GetValueOrDefault(weightsKey);
        var fingerprint = $"{config?.ETag}/{config?.Size}|{weights?.ETag}/{weights?.Size}";
        if (_known.TryGetValue(uri, out var known) && known.Fingerprint == fingerprint)
            return (known.Adapter is null ? null : known.Adapter with { Name = name }, known.Failure);

        var files = new S3Files(this, client, bucket, configKey, weightsKey, config, weights, hasCredentials);
        var (adapter, failure) = await RemoteAdapterInspector.InspectAsync(name, uri, $"s3://{bucket}/{keyPrefix}", "", files, cancellationToken);
        if (adapter is not null)
            adapter = adapter with { Digest = await ChecksumAsync(client, bucket, weightsKey, hasCredentials, cancellationToken) ?? "" };
        _known[uri] = (fingerprint, adapter, failure);
        if (_known.Count > 100_000) _known.Clear(); // a bound, not a policy: the next listing re-reads
        return (adapter, failure);
    }

    private static string Join(string prefix, string file) => prefix.Length > 0 ? prefix + "/" + file : file;

    /// <summary>The object's sha256 when the store keeps one for the whole object (S3 with checksums); else null.</summary>
    private async Task<string?> ChecksumAsync(IAmazonS3 client, string bucket, string key, bool hasCredentials, CancellationToken cancellationToken)
    {
        var head = await CallAsync($"HEAD s3://{bucket}/{key}", hasCredentials, ct => client.GetObjectMetadataAsync(
            new GetObjectMetadataRequest { BucketName = bucket, Key = key, ChecksumMode = ChecksumMode.ENABLED }, ct), cancellationToken);
        return FullObjectSha256(head.ChecksumSHA256, head.ChecksumType?.Value);
    }

    /// <summary>S3's <c>x-amz-checksum-sha256</c> is base64; a multipart upload's is a checksum of checksums ("…-N", COMPOSITE), not the file's.</summary>
    internal static string? FullObjectSha256(string? checksumSha256, string? checksumType)
    {
        if (string.IsNullOrEmpty(checksumSha256) || checksumSha256.Contains('-') || string.Equals(checksumType, "COMPOSITE", StringComparison.OrdinalIgnoreCase))
            return null;
        var bytes = new byte[32];
        return Convert.TryFromBase64String(checksumSha256, bytes, out var written) && written == 32 ? Convert.ToHexStringLower(bytes) : null;
    }

    private async Task<Dictionary<string, S3Object_>> ListAsync(IAmazonS3 client, string bucket, string prefix, string where, bool hasCredentials, CancellationToken cancellationToken)
    {
        var objects = new Dictionary<string, S3Object_>(StringComparer.Ordinal);
        var request = new ListObjectsV2Request { BucketName = bucket, Prefix = prefix.Length > 0 ? prefix + "/" : null };
        for (var page = 0; ; page++)
        {
            if (page >= MaxListPages)
                throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"listing {where} did not end after {MaxListPages} pages.");
            var response = await CallAsync($"listing {where}", hasCredentials, ct => client.ListObjectsV2Async(request, ct), cancellationToken);
            foreach (var o in response.S3Objects ?? []) objects[o.Key] = new S3Object_(o.Size ?? 0, o.ETag ?? "");
            if (response.IsTruncated != true) return objects;
            if (string.IsNullOrEmpty(response.NextContinuationToken) || response.NextContinuationToken == request.ContinuationToken)
                throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"listing {where}: the store said there is more but gave no new continuation token.");
            request.ContinuationToken = response.NextContinuationToken;
        }
    }

    /// <summary>One S3 call under the request deadline; failures that concern the whole source become <see cref="SourceException"/>s.</summary>
    private async Task<T> CallAsync<T>(string what, bool hasCredentials, Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_options.SourceRequestTimeout);
        try
        {
            return await call(deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"{what} timed out after {_options.SourceRequestTimeout.TotalSeconds:0.###} s.");
        }
        catch (AmazonS3Exception e) when (e.StatusCode is HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized)
        {
            throw hasCredentials
                ? new SourceException(LoraAdapterReasons.SourceUnavailable, $"{what}: access denied with the configured credentials ({e.ErrorCode}).")
                : new SourceException(LoraAdapterReasons.CredentialsMissing, $"{what}: access denied ({e.ErrorCode}) and no credentials are configured (spec.credentialsSecretRef, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).");
        }
        catch (AmazonS3Exception e) when (e.ErrorCode is "NoSuchBucket")
        {
            throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"{what}: the bucket does not exist.");
        }
        catch (AmazonS3Exception e) when (e.ErrorCode is "InvalidAccessKeyId" or "SignatureDoesNotMatch" or "ExpiredToken")
        {
            throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"{what}: the configured credentials were refused ({e.ErrorCode}).");
        }
        catch (AmazonS3Exception e) when ((int)e.StatusCode >= 500 || e.StatusCode == 0)
        {
            throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"{what} failed: {(int)e.StatusCode} {e.ErrorCode}: {e.Message}", e);
        }
        catch (AmazonS3Exception)
        {
            throw; // per object (404, 416): the caller decides
        }
        catch (Exception e) when (e is AmazonClientException or HttpRequestException or IOException or SocketException)
        {
            throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"{what} failed: {Innermost(e).Message}", e);
        }
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e;
    }

    private async Task<(IAmazonS3 Client, bool HasCredentials)> CreateClientAsync(DiscoveryRequest request, CancellationToken cancellationToken)
    {
        IReadOnlyDictionary<string, string>? secret = null;
        if (request.CredentialsSecret is { } secretName)
        {
            secret = await secrets.ReadAsync(secretName, request.Namespace, cancellationToken);
            var missing = new[] { "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY" }.Where(k => string.IsNullOrEmpty(secret.GetValueOrDefault(k))).ToList();
            if (missing.Count > 0)
                throw new SourceException(LoraAdapterReasons.CredentialsMissing,
                    $"secret '{secretName}' named by spec.credentialsSecretRef has no {string.Join(" and no ", missing)}.");
        }
        string? Setting(string key) => secret?.GetValueOrDefault(key) is { Length: > 0 } v ? v : null;
        string? Env(string key) => environment.Get(key) is { Length: > 0 } v ? v : null;

        var serviceUrl = Setting("AWS_ENDPOINT_URL") ?? _options.S3.ServiceUrl ?? Env("AWS_ENDPOINT_URL_S3") ?? Env("AWS_ENDPOINT_URL");
        var region = Setting("AWS_REGION") ?? _options.S3.Region ?? Env("AWS_REGION") ?? Env("AWS_DEFAULT_REGION") ?? "us-east-1";
        var config = new AmazonS3Config
        {
            ForcePathStyle = _options.S3.ForcePathStyle ?? serviceUrl is not null,
            Timeout = _options.SourceRequestTimeout,
            MaxErrorRetry = 1, // the reconciler retries the source with its own backoff
            // S3-compatible stores (MinIO, s3rver) often lack the newer flexible checksums.
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
        };
        if (serviceUrl is not null)
        {
            if (!Uri.TryCreate(serviceUrl, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
                throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"the S3 endpoint '{serviceUrl}' is not an absolute http(s) URL.");
            config.ServiceURL = serviceUrl;
            config.AuthenticationRegion = region;
        }
        else
        {
            config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(region);
        }

        AWSCredentials? credentials = null;
        if (secret is not null)
            credentials = Credentials(Setting("AWS_ACCESS_KEY_ID")!, Setting("AWS_SECRET_ACCESS_KEY")!, Setting("AWS_SESSION_TOKEN"));
        else if (Env("AWS_ACCESS_KEY_ID") is { } id && Env("AWS_SECRET_ACCESS_KEY") is { } key)
            credentials = Credentials(id, key, Env("AWS_SESSION_TOKEN"));
        if (credentials is not null) return (new AmazonS3Client(credentials, config), true);

        // Neither a secret nor keys in the environment: the SDK's own chain (web identity, container or instance role).
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(_options.SourceRequestTimeout);
            var resolved = await DefaultAWSCredentialsIdentityResolver.GetCredentialsAsync(config).WaitAsync(deadline.Token);
            return (new AmazonS3Client(resolved, config), true);
        }
        catch (Exception e) when (e is AmazonClientException or OperationCanceledException or InvalidOperationException && !cancellationToken.IsCancellationRequested)
        {
            throw new SourceException(LoraAdapterReasons.CredentialsMissing,
                "no S3 credentials: spec.credentialsSecretRef is not set, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not in the environment, and the SDK's credential chain found none.");
        }
    }

    private static AWSCredentials Credentials(string id, string secret, string? session) =>
        session is null ? new BasicAWSCredentials(id, secret) : new SessionAWSCredentials(id, secret, session);

    /// <summary>An adapter's two objects, read through the S3 API with ranges.</summary>
    private sealed class S3Files(S3AdapterDiscovery owner, IAmazonS3 client, string bucket, string configKey, string weightsKey,
        S3Object_? config, S3Object_? weights, bool hasCredentials) : IAdapterFiles
    {
        public async Task<byte[]?> ReadConfigAsync(CancellationToken cancellationToken)
        {
            if (config is null) return null;
            if (config.Size > PeftAdapter.MaxConfigBytes)
                throw new PeftFormatException($"adapter_config.json is {config.Size} bytes; the limit is {PeftAdapter.MaxConfigBytes}.");
            return await GetAsync(configKey, null, (int)PeftAdapter.MaxConfigBytes + 1, cancellationToken) is { } read
                ? (read.Bytes.Length > PeftAdapter.MaxConfigBytes
                    ? throw new PeftFormatException($"adapter_config.json is larger than the limit of {PeftAdapter.MaxConfigBytes} bytes.")
                    : read.Bytes)
                : null;
        }

        public async Task<RangeRead?> ReadWeightsAsync(long offset, int length, CancellationToken cancellationToken)
        {
            if (weights is null) return null;
            if (offset >= weights.Size) return new RangeRead([], weights.Size);
            return await GetAsync(weightsKey, new ByteRange(offset, offset + length - 1), length, cancellationToken);
        }

        private async Task<RangeRead?> GetAsync(string key, ByteRange? range, int maxBytes, CancellationToken cancellationToken)
        {
            var what = $"GET s3://{bucket}/{key}";
            try
            {
                return await owner.CallAsync(what, hasCredentials, async ct =>
                {
                    using var response = await client.GetObjectAsync(new GetObjectRequest { BucketName = bucket, Key = key, ByteRange = range }, ct);
                    var total = TotalLength(response.ContentRange) ?? (range is null ? response.ContentLength : weights?.Size ?? response.ContentLength);
                    var buffer = new byte[Math.Min(maxBytes, Math.Max(0, response.ContentLength))];
                    var read = await response.ResponseStream.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, ct);
                    return new RangeRead(read == buffer.Length ? buffer : buffer[..read], total);
                }, cancellationToken);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                return null;
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                return new RangeRead([], weights?.Size ?? 0);
            }
            catch (AmazonS3Exception e)
            {
                throw new AdapterReadException(LoraAdapterReasons.SourceUnavailable, $"{what} failed: {(int)e.StatusCode} {e.ErrorCode}.");
            }
        }

        /// <summary>"bytes 0-7/12345" → 12345.</summary>
        private static long? TotalLength(string? contentRange) =>
            contentRange?.LastIndexOf('/') is int slash and >= 0 && long.TryParse(contentRange[(slash + 1)..], out var total) ? total : null;
    }

    [LoggerMessage(EventId = 350, Level = LogLevel.Information,
        Message = "{Source}: {Count} adapter(s) have no sha256 from the store (no full-object checksum); their digest stays empty and sidecars check downloads by size and format")]
    private static partial void LogNoChecksum(ILogger logger, string source, int count);
}
