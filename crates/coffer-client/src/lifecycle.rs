//! [`CofferClient`] methods for the lifecycle of secrets and vaults: soft delete, the deleted
//! listings, recover, purge, and backup and restore.
//!
//! A vault backup can be far larger than memory should hold (a vault may hold 100,000
//! secrets), so it is streamed both ways: [`CofferClient::backup_vault_to`] writes each chunk
//! as it arrives, and [`CofferClient::restore_vault_from`] reads the input a chunk at a time.
//! A stream is never resent half-way through: a backup is retried on another node only until
//! its first chunk has arrived (nothing has been written yet), and a restore is sent once.

use std::io;

use coffer_proto::v1::{
    BackupChunk, BackupSecretRequest, BackupVaultRequest, DeleteSecretRequest, DeletedSecret,
    DeletedVault, GetDeletedSecretRequest, GetDeletedVaultRequest, ListDeletedSecretsRequest,
    ListDeletedVaultsRequest, PurgeDeletedSecretRequest, PurgeDeletedVaultRequest,
    RecoverDeletedSecretRequest, RecoverDeletedVaultRequest, RestoreSecretRequest,
    RestoreVaultChunk, Secret, Vault,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use crate::client::{Pager, with_meta};
use crate::{ClientError, CofferClient};

/// Data carried by each message of a vault restore: well under the 4 MiB a gRPC server
/// accepts per message by default, and large enough that framing costs nothing.
pub(crate) const RESTORE_CHUNK: usize = 1024 * 1024;

/// Messages of a restore read ahead of the network. Bounds the memory a restore holds to a
/// few chunks, whatever the size of the backup.
const RESTORE_QUEUE: usize = 2;

/// The largest backup message accepted: a vault backup chunk or a whole secret backup (every
/// version of a secret). Above tonic's 4 MiB default, since a secret with many versions near
/// the value size limit exceeds it; still a bound on what a broken server can make us hold.
const BACKUP_MESSAGE_LIMIT: usize = 64 * 1024 * 1024;

impl CofferClient {
    /// Deletes a secret: every version moves to the deleted state, recoverable until the
    /// returned scheduled purge date.
    pub async fn delete_secret(
        &self,
        vault: &str,
        name: &str,
    ) -> Result<DeletedSecret, ClientError> {
        let request = DeleteSecretRequest {
            vault: vault.to_owned(),
            name: name.to_owned(),
        };
        let delete = self.call(|mut n, m| {
            let r = request.clone();
            async move { n.secrets.delete_secret(with_meta(r, m)).await }
        });
        self.changing_secret(vault, Some(name), delete).await
    }

    /// Reads a deleted secret (its latest version's properties, never a value).
    pub async fn get_deleted_secret(
        &self,
        vault: &str,
        name: &str,
    ) -> Result<DeletedSecret, ClientError> {
        let request = GetDeletedSecretRequest {
            vault: vault.to_owned(),
            name: name.to_owned(),
        };
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.secrets.get_deleted_secret(with_meta(r, m)).await }
        })
        .await
    }

    /// Lists the deleted secrets of a vault, following all pages. `page_size` is the number of
    /// results asked for per page (the server's default when `None`); it does not limit the
    /// total.
    pub async fn list_deleted_secrets(
        &self,
        vault: &str,
        page_size: Option<u32>,
    ) -> Result<Vec<DeletedSecret>, ClientError> {
        let mut secrets = Vec::new();
        let mut pages = Pager::default();
        while let Some(page_token) = pages.next_request()? {
            let request = ListDeletedSecretsRequest {
                vault: vault.to_owned(),
                max_results: page_size.unwrap_or(0),
                page_token,
            };
            let page = self
                .call(|mut n, m| {
                    let r = request.clone();
                    async move { n.secrets.list_deleted_secrets(with_meta(r, m)).await }
                })
                .await?;
            secrets.extend(page.secrets);
            pages.record(page.next_page_token);
        }
        Ok(secrets)
    }

    /// Makes a deleted secret active again, with all its versions; returns its latest
    /// version's properties (no value).
    pub async fn recover_deleted_secret(
        &self,
        vault: &str,
        name: &str,
    ) -> Result<Secret, ClientError> {
        let request = RecoverDeletedSecretRequest {
            vault: vault.to_owned(),
            name: name.to_owned(),
        };
        let recover = self.call(|mut n, m| {
            let r = request.clone();
            async move { n.secrets.recover_deleted_secret(with_meta(r, m)).await }
        });
        self.changing_secret(vault, Some(name), recover).await
    }

    /// Removes a deleted secret for good.
    pub async fn purge_deleted_secret(&self, vault: &str, name: &str) -> Result<(), ClientError> {
        let request = PurgeDeletedSecretRequest {
            vault: vault.to_owned(),
            name: name.to_owned(),
        };
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.secrets.purge_deleted_secret(with_meta(r, m)).await }
        })
        .await?;
        Ok(())
    }

    /// A backup of one secret (every version with its attributes and tags, sealed with the
    /// geography backup key), as an opaque blob for [`CofferClient::restore_secret`].
    pub async fn backup_secret(&self, vault: &str, name: &str) -> Result<Vec<u8>, ClientError> {
        let request = BackupSecretRequest {
            vault: vault.to_owned(),
            name: name.to_owned(),
        };
        let response = self
            .call(|n, m| {
                let r = request.clone();
                let mut secrets = n.secrets.max_decoding_message_size(BACKUP_MESSAGE_LIMIT);
                async move { secrets.backup_secret(with_meta(r, m)).await }
            })
            .await?;
        Ok(response.value)
    }

    /// Restores a secret backup into `vault`; returns the restored secret's latest version
    /// (no value).
    pub async fn restore_secret(
        &self,
        vault: &str,
        backup: Vec<u8>,
    ) -> Result<Secret, ClientError> {
        let request = RestoreSecretRequest {
            vault: vault.to_owned(),
            value: backup,
        };
        let restore = self.call(|mut n, m| {
            let r = request.clone();
            async move { n.secrets.restore_secret(with_meta(r, m)).await }
        });
        // The backup names the secret, so the whole vault's copies are forgotten.
        self.changing_secret(vault, None, restore).await
    }

    /// Lists the deleted vaults the token may see, following all pages.
    pub async fn list_deleted_vaults(&self) -> Result<Vec<DeletedVault>, ClientError> {
        let mut vaults = Vec::new();
        let mut pages = Pager::default();
        while let Some(page_token) = pages.next_request()? {
            let request = ListDeletedVaultsRequest {
                max_results: 0,
                page_token,
            };
            let page = self
                .call(|mut n, m| {
                    let r = request.clone();
                    async move { n.vaults.list_deleted_vaults(with_meta(r, m)).await }
                })
                .await?;
            vaults.extend(page.vaults);
            pages.record(page.next_page_token);
        }
        Ok(vaults)
    }

    /// Reads a deleted vault.
    pub async fn get_deleted_vault(&self, name: &str) -> Result<DeletedVault, ClientError> {
        let request = GetDeletedVaultRequest {
            name: name.to_owned(),
        };
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.vaults.get_deleted_vault(with_meta(r, m)).await }
        })
        .await
    }

    /// Makes a deleted vault active again, with its objects.
    pub async fn recover_deleted_vault(&self, name: &str) -> Result<Vault, ClientError> {
        let request = RecoverDeletedVaultRequest {
            name: name.to_owned(),
        };
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.vaults.recover_deleted_vault(with_meta(r, m)).await }
        })
        .await
    }

    /// Removes a deleted vault and its objects for good.
    pub async fn purge_deleted_vault(&self, name: &str) -> Result<(), ClientError> {
        let request = PurgeDeletedVaultRequest {
            name: name.to_owned(),
        };
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.vaults.purge_deleted_vault(with_meta(r, m)).await }
        })
        .await?;
        Ok(())
    }

    /// Streams a backup of vault `name` into `out`, writing each chunk as it arrives (the
    /// backup is never held in memory whole); returns the number of bytes written.
    ///
    /// Until the first chunk has arrived the call fails over like any other; after it, a
    /// failure ends the call, and what `out` received is incomplete: the caller must discard
    /// it (write to a temporary file and move it into place only on success).
    pub async fn backup_vault_to<W>(&self, name: &str, out: &mut W) -> Result<u64, ClientError>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let request = BackupVaultRequest {
            name: name.to_owned(),
        };
        // The first chunk is awaited inside the failover loop: until it arrives nothing has
        // been written, so another node may still be asked.
        let (first, rest) = self
            .call(|n, m| {
                let r = request.clone();
                let mut vaults = n.vaults.max_decoding_message_size(BACKUP_MESSAGE_LIMIT);
                async move {
                    let mut stream = vaults.backup_vault(with_meta(r, m)).await?.into_inner();
                    let first = stream.message().await?;
                    Ok(tonic::Response::new((first, stream)))
                }
            })
            .await?;
        write_chunks(first, rest, out).await
    }

    /// Restores a vault backup read from `input` as the new vault `name`, in `location` (else
    /// the backed-up vault's). The input is sent in chunks as it is read, never held whole.
    ///
    /// The call is made once, without failover: the input cannot be read a second time. The
    /// server writes nothing until it has received and verified the whole backup, so a
    /// failed restore may simply be run again. If reading `input` fails, the call is
    /// cancelled (the server sees an aborted upload, never a complete but truncated one) and
    /// the read error is returned.
    pub async fn restore_vault_from<R>(
        &self,
        name: &str,
        location: Option<&str>,
        input: R,
    ) -> Result<Vault, ClientError>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let header = RestoreVaultChunk {
            name: name.to_owned(),
            location: location.unwrap_or_default().to_owned(),
            data: Vec::new(),
        };
        let (chunks, queue) = mpsc::channel(RESTORE_QUEUE);
        let (read_failed, read_error) = oneshot::channel();
        let reader = tokio::spawn(read_chunks(input, header, chunks, read_failed));
        let mut call = Box::pin(self.call_once(|n, m| async move {
            let mut vaults = n.vaults;
            vaults
                .restore_vault(with_meta(ReceiverStream::new(queue), m))
                .await
        }));
        let result = tokio::select! {
            result = &mut call => result,
            // `Err` (the reader finished without failing) disables this branch.
            Ok(err) = read_error => {
                // Dropping the call while the request stream is still open resets the HTTP/2
                // stream; the reader holds the stream open until then.
                drop(call);
                return Err(ClientError::io("reading the backup", err));
            }
        };
        // The server answered (possibly before reading everything, to refuse it): stop
        // reading.
        reader.abort();
        result
    }
}

/// Writes the chunks of a backup stream to `out`, `first` first; returns the bytes written.
async fn write_chunks<S, W>(
    first: Option<BackupChunk>,
    mut rest: S,
    out: &mut W,
) -> Result<u64, ClientError>
where
    S: Stream<Item = Result<BackupChunk, Status>> + Unpin,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut written = 0u64;
    let mut next = first;
    while let Some(chunk) = next {
        out.write_all(&chunk.data)
            .await
            .map_err(|err| ClientError::io("writing the backup", err))?;
        written += chunk.data.len() as u64;
        next = rest.next().await.transpose()?;
    }
    out.flush()
        .await
        .map_err(|err| ClientError::io("writing the backup", err))?;
    if written == 0 {
        // No backup format is empty: reporting success would leave a file that restores
        // nothing.
        return Err(ClientError::InvalidResponse {
            message: "the server sent an empty backup".to_owned(),
        });
    }
    Ok(written)
}

/// Reads `input` in [`RESTORE_CHUNK`]s and queues the messages of a restore: `header` (the
/// vault's name and location) with the first chunk, then one message per chunk. Returns when
/// the input is exhausted (dropping `chunks` ends the request stream) or the call has ended.
///
/// On a read error it reports the error through `failed` and keeps `chunks` until the request
/// stream is gone: ending the stream instead would send the server a complete-looking upload
/// of part of the backup.
async fn read_chunks<R>(
    mut input: R,
    header: RestoreVaultChunk,
    chunks: mpsc::Sender<RestoreVaultChunk>,
    failed: oneshot::Sender<io::Error>,
) where
    R: AsyncRead + Unpin,
{
    let mut next = header;
    let mut first = true;
    loop {
        let data = match read_chunk(&mut input).await {
            Ok(data) => data,
            Err(err) => {
                let _ = failed.send(err);
                chunks.closed().await;
                return;
            }
        };
        let last = data.len() < RESTORE_CHUNK;
        // The first message goes out even when empty: it names the vault.
        if data.is_empty() && !first {
            return;
        }
        next.data = data;
        if chunks.send(next).await.is_err() {
            // The call has ended; its result says why.
            return;
        }
        if last {
            return;
        }
        first = false;
        next = RestoreVaultChunk::default();
    }
}

/// Reads up to [`RESTORE_CHUNK`] bytes, fewer only at the end of the input.
async fn read_chunk<R>(input: &mut R) -> io::Result<Vec<u8>>
where
    R: AsyncRead + Unpin,
{
    let mut data = Vec::with_capacity(RESTORE_CHUNK);
    input
        .take(RESTORE_CHUNK as u64)
        .read_to_end(&mut data)
        .await?;
    Ok(data)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    fn chunk(data: &[u8]) -> BackupChunk {
        BackupChunk {
            data: data.to_vec(),
        }
    }

    #[tokio::test]
    async fn backup_chunks_are_written_in_order() {
        let mut out = Vec::new();
        let rest = tokio_stream::iter(vec![Ok(chunk(b"bc")), Ok(chunk(b"")), Ok(chunk(b"def"))]);
        let written = write_chunks(Some(chunk(b"a")), rest, &mut out)
            .await
            .unwrap();
        assert_eq!(written, 6);
        assert_eq!(out, b"abcdef");
    }

    #[tokio::test]
    async fn a_failure_mid_stream_is_an_error() {
        let mut out = Vec::new();
        let rest = tokio_stream::iter(vec![
            Ok(chunk(b"b")),
            Err(Status::unavailable("leader lost")),
            Ok(chunk(b"never")),
        ]);
        let err = write_chunks(Some(chunk(b"a")), rest, &mut out)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ServiceUnavailable", "{err}");
        assert_eq!(out, b"ab");
    }

    #[tokio::test]
    async fn an_empty_backup_is_refused() {
        for first in [None, Some(chunk(b""))] {
            let mut out = Vec::new();
            let err = write_chunks(first, tokio_stream::empty(), &mut out)
                .await
                .unwrap_err();
            assert_eq!(err.code(), "InvalidResponse", "{err}");
        }
    }

    /// Everything `read_chunks` queues for `input`, and the read error it reported.
    async fn queued<R>(input: R) -> (Vec<RestoreVaultChunk>, Option<io::Error>)
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let header = RestoreVaultChunk {
            name: "kv2".to_owned(),
            location: "west".to_owned(),
            data: Vec::new(),
        };
        let (tx, mut rx) = mpsc::channel(RESTORE_QUEUE);
        let (failed_tx, mut failed_rx) = oneshot::channel();
        let reader = tokio::spawn(read_chunks(input, header, tx, failed_tx));
        let mut messages = Vec::new();
        loop {
            tokio::select! {
                // Drains what was queued before a failure was reported.
                biased;
                message = rx.recv() => match message {
                    Some(message) => messages.push(message),
                    None => break,
                },
                Ok(err) = &mut failed_rx => {
                    // The stream must still be open: the reader holds it until it is dropped.
                    assert!(matches!(
                        rx.try_recv(),
                        Err(mpsc::error::TryRecvError::Empty)
                    ));
                    drop(rx);
                    reader.await.unwrap();
                    return (messages, Some(err));
                }
            }
        }
        reader.await.unwrap();
        (messages, None)
    }

    #[tokio::test]
    async fn restore_messages_carry_the_header_first_then_chunks() {
        let input: Vec<u8> = (0..RESTORE_CHUNK * 2 + 10).map(|i| i as u8).collect();
        let (messages, err) = queued(std::io::Cursor::new(input.clone())).await;
        assert!(err.is_none());
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[0].name, "kv2");
        assert_eq!(messages[0].location, "west");
        assert!(messages[1..].iter().all(|m| m.name.is_empty()));
        assert_eq!(
            messages.iter().map(|m| m.data.len()).collect::<Vec<_>>(),
            [RESTORE_CHUNK, RESTORE_CHUNK, 10]
        );
        let joined: Vec<u8> = messages.into_iter().flat_map(|m| m.data).collect();
        assert_eq!(joined, input);
    }

    #[tokio::test]
    async fn an_input_of_whole_chunks_sends_no_empty_tail() {
        let (messages, _) = queued(std::io::Cursor::new(vec![7u8; RESTORE_CHUNK])).await;
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].data.len(), RESTORE_CHUNK);
        // An empty input still names the vault; the server refuses the empty backup.
        let (messages, _) = queued(std::io::Cursor::new(Vec::new())).await;
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].name, "kv2");
        assert!(messages[0].data.is_empty());
    }

    /// Yields `good` bytes, then fails.
    struct FailingReader {
        good: usize,
    }

    impl AsyncRead for FailingReader {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.good == 0 {
                return Poll::Ready(Err(io::Error::other("disk gone")));
            }
            let n = self.good.min(buf.remaining());
            buf.put_slice(&vec![1u8; n]);
            self.good -= n;
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_read_error_is_reported_and_never_ends_the_stream() {
        let (messages, err) = queued(FailingReader {
            good: RESTORE_CHUNK + 5,
        })
        .await;
        assert_eq!(err.unwrap().to_string(), "disk gone");
        // Only the whole first chunk went out; the partial second one never did.
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].data.len(), RESTORE_CHUNK);
    }

    #[test]
    fn io_errors_have_the_file_error_code() {
        let err = ClientError::io("writing the backup", io::Error::other("disk full"));
        assert_eq!(err.code(), "FileError");
        assert_eq!(err.to_string(), "(FileError) writing the backup: disk full");
    }
}
