using System.Text.RegularExpressions;

namespace HybridServing.EngineSidecar.Artifacts;

internal enum AdapterSourceKind { Local, Http, S3, Hub }

/// <summary>
/// A parsed adapter source. Forms: an absolute local path or <c>file://</c> URI; <c>http(s)://</c> base URL of a
/// directory holding the PEFT files; <c>s3://bucket/prefix</c>; <c>hf://</c> or <c>huggingface://org/repo[/subfolder][@revision]</c>;
/// and, as vLLM and the lora-syncer accept it, a bare Hub repo id <c>org/repo</c>.
/// </summary>
internal sealed partial record AdapterSource(
    AdapterSourceKind Kind,
    string Original,
    string? LocalPath = null,
    Uri? Url = null,
    string? Bucket = null,
    string? Key = null,
    string? Repo = null,
    string? Revision = null,
    string? Subfolder = null)
{
    /// <summary>"namespace/name" of the Secret to fetch with (spec.credentialsSecretRef); null: the sidecar's own credentials.</summary>
    public string? Credentials { get; init; }

    /// <summary>The identity of the remote artifact, for the cache index and download sharing. The credentials are part
    /// of it: an adapter fetched with one tenant's Secret is never handed, by its URL, to a spec without that Secret.</summary>
    public string CacheKey => (Kind switch
    {
        AdapterSourceKind.Local => "file:" + LocalPath,
        AdapterSourceKind.Http => Url!.AbsoluteUri.TrimEnd('/'),
        AdapterSourceKind.S3 => $"s3://{Bucket}/{Key}",
        AdapterSourceKind.Hub => $"hf://{Repo}/{Subfolder}@{Revision ?? "(default)"}",
        _ => Original,
    }) + (Credentials is null || Kind == AdapterSourceKind.Local ? "" : " with secret " + Credentials);

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")]
    private static partial Regex RepoId();

    [GeneratedRegex(@"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")]
    private static partial Regex BucketName();

    public static AdapterSource Parse(string source)
    {
        if (string.IsNullOrWhiteSpace(source))
            throw Invalid(source, "the source is empty");
        source = source.Trim();
        if (source.Any(char.IsControl))
            throw Invalid(source, "it contains control characters");

        if (source.StartsWith('/'))
            return new AdapterSource(AdapterSourceKind.Local, source, LocalPath: source);

        var schemeEnd = source.IndexOf("://", StringComparison.Ordinal);
        if (schemeEnd < 0)
        {
            // vLLM treats a non-path lora_path as a Hub repo id; the lora-syncer's example relies on that.
            if (RepoId().IsMatch(source) && !source.Contains(".."))
                return new AdapterSource(AdapterSourceKind.Hub, source, Repo: source);
            throw Invalid(source, "it is neither an absolute path, a URI (file, http, https, s3, hf, huggingface) nor a Hub repo id 'org/name'");
        }

        var scheme = source[..schemeEnd].ToLowerInvariant();
        switch (scheme)
        {
            case "file":
            {
                if (!Uri.TryCreate(source, UriKind.Absolute, out var uri) || !uri.IsFile || !string.IsNullOrEmpty(uri.Host))
                    throw Invalid(source, "a file URI must look like file:///absolute/path");
                return new AdapterSource(AdapterSourceKind.Local, source, LocalPath: uri.LocalPath);
            }
            case "http" or "https":
            {
                if (!Uri.TryCreate(source, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
                    throw Invalid(source, "it is not a valid http(s) URL");
                if (!string.IsNullOrEmpty(uri.UserInfo))
                    throw Invalid(source, "credentials in the URL are refused (they would be logged and cached); use a signed URL instead");
                return new AdapterSource(AdapterSourceKind.Http, source, Url: uri);
            }
            case "s3":
            {
                var rest = source[(schemeEnd + 3)..];
                var slash = rest.IndexOf('/');
                var bucket = slash < 0 ? rest : rest[..slash];
                var key = slash < 0 ? "" : rest[(slash + 1)..].Trim('/');
                if (!BucketName().IsMatch(bucket))
                    throw Invalid(source, $"'{bucket}' is not a valid S3 bucket name");
                if (key.Split('/').Any(s => s is "." or ".."))
                    throw Invalid(source, "the key must not contain '.' or '..' segments");
                return new AdapterSource(AdapterSourceKind.S3, source, Bucket: bucket, Key: key);
            }
            case "hf" or "huggingface":
            {
                var rest = source[(schemeEnd + 3)..];
                string? revision = null;
                var at = rest.LastIndexOf('@');
                if (at >= 0)
                {
                    revision = rest[(at + 1)..];
                    rest = rest[..at];
                    if (revision.Length == 0 || revision.Split('/').Any(s => s is "" or "." or ".."))
                        throw Invalid(source, $"'{revision}' is not a valid revision");
                }
                var parts = rest.Trim('/').Split('/');
                if (parts.Length < 2 || !RepoId().IsMatch(parts[0] + "/" + parts[1]))
                    throw Invalid(source, "a Hub source must be hf://org/repo[/subfolder][@revision]");
                var sub = parts.Length > 2 ? string.Join('/', parts[2..]) : null;
                if (parts.Skip(2).Any(s => s is "" or "." or ".."))
                    throw Invalid(source, "the subfolder must not contain empty, '.' or '..' segments");
                return new AdapterSource(AdapterSourceKind.Hub, source, Repo: parts[0] + "/" + parts[1], Revision: revision, Subfolder: sub);
            }
            default:
                throw Invalid(source, $"the scheme '{scheme}' is not supported (use file, http, https, s3, hf or huggingface)");
        }
    }

    /// <summary>The source as logs and messages may show it: no user info, no query string (signed URLs carry
    /// credentials there).</summary>
    public string Display => Redact(Original);

    internal static string Redact(string source)
    {
        var text = source;
        var query = text.IndexOf('?');
        if (query >= 0) text = text[..query] + "?…";
        var scheme = text.IndexOf("://", StringComparison.Ordinal);
        var at = scheme < 0 ? -1 : text.IndexOf('@', scheme + 3);
        var slash = scheme < 0 ? -1 : text.IndexOf('/', scheme + 3);
        // user:password@host — but not hf://org/repo@revision, where '@' comes after the first '/'.
        if (at > 0 && (slash < 0 || at < slash) && text[..scheme].ToLowerInvariant() is "http" or "https")
            text = text[..(scheme + 3)] + "***@" + text[(at + 1)..];
        return text;
    }

    private static ArtifactException Invalid(string source, string why) =>
        new(FailureReasons.InvalidSource, $"Adapter source '{Redact(source)}' is not usable: {why}.");
}
