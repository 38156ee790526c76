//! Drives the lock and election recipes (`host::recipe`) against this member, as etcd's lock
//! and election services run clientv3's recipes in-process: every request a recipe asks for goes
//! to the member task exactly as a KV, lease or watch request of a client would, so the
//! services add no consensus or storage logic of their own.
//!
//! A run that is dropped before it finished (the client cancelled or went away) ends its watch
//! and sends the recipe's `abandon` request (a waiter's key deleted), as etcd's recipes clean up
//! when their context ends; a run that failed does the same.

use engine::kv::{Request, RequestError, WatchCreateRequest, WatchResponse};
use engine::types::WatchId;
use host::recipe::{Next, Recipe, RecipeError};
use tonic::{Code, Status};

use crate::auth::Caller;
use crate::grpc::Services;
use crate::task::{Answer, Command};
use crate::watch_stream::{self, WatchSource};

/// What one step of a run came to.
pub(crate) enum Outcome<T> {
    /// A stream's next message.
    Emit(T),
    /// The recipe finished.
    Done(Result<T, RecipeError>),
}

/// The watch a recipe opened.
struct OpenWatch {
    source: WatchSource,
    /// The member's id for it, once its `created` response came.
    id: Option<WatchId>,
}

/// One recipe being driven against the member.
pub(crate) struct Run<R: Recipe> {
    services: Services,
    /// Whom the recipe's requests run as: the service's caller, as etcd's in-process client
    /// carries the caller's context, so a lock is held only where the caller may write.
    caller: Caller,
    recipe: R,
    watch: Option<OpenWatch>,
    started: bool,
    finished: bool,
}

impl<R: Recipe> Run<R> {
    /// A run of `recipe` through `services` as `caller`.
    pub(crate) fn new(services: Services, caller: Caller, recipe: R) -> Run<R> {
        Run {
            services,
            caller,
            recipe,
            watch: None,
            started: false,
            finished: false,
        }
    }

    /// Drives a recipe that emits nothing to its end.
    pub(crate) async fn finish(mut self) -> Result<R::Output, RecipeError> {
        loop {
            if let Outcome::Done(result) = self.advance().await {
                return result;
            }
        }
    }

    /// Drives the recipe until it emits or finishes.
    pub(crate) async fn advance(&mut self) -> Outcome<R::Output> {
        let mut next = match self.started {
            false => {
                self.started = true;
                self.recipe.start()
            }
            true => self.recipe.resume(),
        };
        loop {
            next = match next {
                Next::Send(request) => {
                    self.close_watch();
                    let answer = self.ask(request).await;
                    self.recipe.on_answer(answer)
                }
                Next::Watch(create) => {
                    self.close_watch();
                    match self.open_watch(create).await {
                        Ok(()) => Next::Wait,
                        Err(error) => Next::Done(Err(RecipeError::Request(error))),
                    }
                }
                Next::Wait => {
                    let response = self.next_watch_response().await;
                    self.recipe.on_watch(&response)
                }
                Next::Emit(output) => return Outcome::Emit(output),
                Next::Done(result) => {
                    self.close_watch();
                    self.finished = true;
                    if result.is_err() {
                        self.send_abandon();
                    }
                    return Outcome::Done(result);
                }
            };
        }
    }

    async fn ask(&self, request: Request) -> Answer {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let command = Command::Request {
            request,
            reply,
            credentials: self.caller.credentials(),
        };
        if self.services.commands.send(command).await.is_err() {
            return Err(RequestError::Stopping);
        }
        answer.await.unwrap_or(Err(RequestError::Stopping))
    }

    /// Opens a watch and waits for its `created` response (so it can be cancelled by id).
    async fn open_watch(&mut self, request: WatchCreateRequest) -> Result<(), RequestError> {
        let (events, source) = watch_stream::channel();
        let command = Command::WatchCreate {
            request,
            events,
            credentials: self.caller.credentials(),
        };
        if self.services.commands.send(command).await.is_err() {
            return Err(RequestError::Stopping);
        }
        self.watch = Some(OpenWatch { source, id: None });
        Ok(())
    }

    /// The open watch's next response other than its creation; a watch that ended (or none
    /// open) reads as cancelled, so the recipe reads the store again.
    async fn next_watch_response(&mut self) -> WatchResponse {
        let cancelled = WatchResponse {
            canceled: true,
            ..WatchResponse::default()
        };
        loop {
            let Some(watch) = self.watch.as_mut() else {
                return cancelled;
            };
            let Some((response, resumed)) = watch.source.next().await else {
                self.watch = None;
                return cancelled;
            };
            if !resumed.is_empty() {
                let resume = Command::WatchResume { watch_ids: resumed };
                let _stopping_ends_the_watch_anyway = self.services.commands.send(resume).await;
            }
            if response.created && !response.canceled {
                watch.id = Some(response.watch_id);
                continue;
            }
            if response.canceled {
                self.watch = None;
            }
            return response;
        }
    }

    /// Ends the open watch, if any: cancelled in the member, its buffer dropped.
    fn close_watch(&mut self) {
        let Some(watch) = self.watch.take() else {
            return;
        };
        drop(watch.source);
        if let Some(watch_id) = watch.id {
            let services = self.services.clone();
            let caller = self.caller.clone();
            tokio::spawn(async move {
                let cancel = Request::WatchCancel { watch_id };
                let _gone_already_is_fine = services.call(&caller, cancel).await;
            });
        }
    }

    /// Sends the recipe's clean-up request, if it has one, without waiting for it.
    fn send_abandon(&mut self) {
        if let Some(request) = self.recipe.abandon() {
            let services = self.services.clone();
            let caller = self.caller.clone();
            tokio::spawn(async move {
                // The key's lease removes it anyway if this fails.
                let _best_effort = services.call(&caller, request).await;
            });
        }
    }
}

impl<R: Recipe> Drop for Run<R> {
    fn drop(&mut self) {
        if !self.finished {
            self.close_watch();
            self.send_abandon();
        }
    }
}

/// The gRPC status etcd's lock and election services answer `error` with. Their recipes run
/// through etcd's in-process client, whose errors reach the caller as plain errors (code
/// Unknown) with etcd's text; "unavailable" stays so, so clients retry it.
pub(crate) fn status(error: &RecipeError) -> Status {
    match error {
        RecipeError::EmptyName => Status::invalid_argument(error.message()),
        RecipeError::Request(request) => {
            let status = crate::convert::status(request);
            match status.code() {
                Code::Unavailable => status,
                _ => Status::unknown(status.message()),
            }
        }
        RecipeError::Unexpected(_) => Status::internal(error.message()),
        RecipeError::MissingLeaderKey
        | RecipeError::SessionExpired
        | RecipeError::NotLeader
        | RecipeError::NoLeader => Status::unknown(error.message()),
    }
}
